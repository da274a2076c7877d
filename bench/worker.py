#!/usr/bin/env python3
"""One benchmark worker process: loads ONE TextRecognition (official paddleocr or ocrfleet — the
same API — or RapidOCR's recogniser behind an adapter) and answers JSON commands on stdin, one
per line, with JSON lines on stdout.

Runs under any of the interpreters (.venv-official for ``--impl official``, .venv-rapidocr for
``--impl rapidocr``, .venv for ocrfleet), so all are driven by the same code path. Started by bench/engine.py; not meant to be run by hand.

    {"op": "run", "paths": [...], "batch_size": 8, "mode": "list"}
        one predict(paths, batch_size) call; returns elapsed seconds, texts, scores
    {"op": "run", ..., "mode": "chunks"}
        one predict() call per batch_size-sized chunk (a server receiving batches); returns
        the seconds of each chunk too (the latency of each of its lines)
    {"op": "quit"}
Every answer carries ``rss_peak_mb`` (ru_maxrss of this process so far).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RapidOCRRecognition:
    """RapidOCR 1.4's recogniser (``rapidocr_onnxruntime.ch_ppocr_rec.TextRecognizer``, its bundled
    ch_PP-OCRv4_rec_infer.onnx) behind ``predict(paths, batch_size)``: its own batching (lines
    sorted by aspect ratio, ``rec_batch_num`` per model call, each batch padded to its widest),
    its own ONNX Runtime session (``intra_op_num_threads`` = ``cpu_threads``). Images are
    decoded with OpenCV inside the call, as the other engines decode inside theirs."""

    def __init__(self, model_name=None, model_dir=None, cpu_threads=None, **_):
        from pathlib import Path

        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        pkg = Path(rapidocr_onnxruntime.__file__).parent
        cfg = read_yaml(str(pkg / "config.yaml"))["Rec"]
        cfg["model_path"] = str(pkg / cfg["model_path"])
        if cpu_threads:
            cfg["intra_op_num_threads"] = int(cpu_threads)
        self.rec = TextRecognizer(cfg)

    def predict(self, paths, batch_size=6):
        import cv2

        self.rec.rec_batch_num = int(batch_size)
        res, _ = self.rec([cv2.imread(p, cv2.IMREAD_COLOR) for p in paths])
        return [{"rec_text": text, "rec_score": score} for text, score in res]




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=("official", "ocrfleet", "rapidocr"), required=True)
    ap.add_argument("--model-name", default="PP-OCRv4_mobile_rec")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--cpu-threads", type=int, default=None)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--hpi", action="store_true")
    ap.add_argument("--pack", default=None)
    ap.add_argument("--precision", default=None)
    a = ap.parse_args()

    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    kwargs = {"model_name": a.model_name}
    if a.model_dir:
        kwargs["model_dir"] = a.model_dir
    if a.cpu_threads:
        kwargs["cpu_threads"] = a.cpu_threads
    if a.precision:
        kwargs["precision"] = a.precision
    t0 = time.perf_counter()
    if a.impl == "official":
        from paddleocr import TextRecognition
    elif a.impl == "rapidocr":
        TextRecognition = RapidOCRRecognition
    else:
        from ocrfleet import TextRecognition

        if a.backend:
            kwargs["backend"] = a.backend
        if a.hpi:
            kwargs["enable_hpi"] = True
        if a.pack:
            kwargs["pack"] = a.pack
    t_import = time.perf_counter() - t0
    model = TextRecognition(**kwargs)
    load = time.perf_counter() - t0
    info = {"ready": True, "import_s": t_import, "load_s": load, "rss_peak_mb": rss_peak_mb(), "pid": os.getpid()}
    if a.impl == "ocrfleet":
        info["backend"] = model.backend
    elif a.impl == "rapidocr":
        info["backend"] = "onnxruntime (RapidOCR)"
    print(json.dumps(info), file=out, flush=True)

    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        paths, bs = cmd["paths"], int(cmd["batch_size"])
        if cmd.get("mode", "list") == "list":
            t = time.perf_counter()
            res = list(model.predict(paths, batch_size=bs))
            elapsed = time.perf_counter() - t
            chunk_s = []
        else:
            res, chunk_s = [], []
            t = time.perf_counter()
            for i in range(0, len(paths), bs):
                tc = time.perf_counter()
                res.extend(model.predict(paths[i:i + bs], batch_size=bs))
                chunk_s.append(time.perf_counter() - tc)
            elapsed = time.perf_counter() - t
        reply = {"elapsed_s": elapsed, "chunk_s": chunk_s,
                 "texts": [r["rec_text"] for r in res], "scores": [float(r["rec_score"]) for r in res],
                 "rss_peak_mb": rss_peak_mb()}
        print(json.dumps(reply, ensure_ascii=False), file=out, flush=True)


if __name__ == "__main__":
    main()
