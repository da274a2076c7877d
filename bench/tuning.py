#!/usr/bin/env python3
"""What makes ocrfleet fast on PP-OCRv4_mobile_rec: one knob at a time, interleaved, in-process.

    . .venv/bin/activate
    python bench/tuning.py                      # ~4 min on 2 cores
    python bench/tuning.py --rounds 3 --rendered 300

Each variant runs the engine's own pipeline (plan_batches -> make_batch -> backend -> CTC
decode) on pre-decoded images at batch size 8, with one knob changed: packing (exact / sorted /
paddleocr), ONNX Runtime session options, OpenVINO hints and threads, bf16 / int8 precision.
Reported: lines/s (median over rounds, variants rotated each round), the share of lines whose
text equals the fp32 exact-packing output (= the official batch-1 output, see tests/test_parity.py),
and label accuracy. Also the preprocessing share: make_batch time vs model time.
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
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import RESULTS, correct, load_lines, v4_model_dir  # noqa: E402


class Variant:
    def __init__(self, name, run, pack="exact"):
        self.name, self.run, self.pack = name, run, pack
        self.lps, self.texts, self.pre_s, self.model_s = [], None, 0.0, 0.0


def ort_runner(path, threads=2, spin=True, opt="all", arena=True, mem_pattern=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[opt]
    so.enable_cpu_mem_arena = arena
    so.enable_mem_pattern = mem_pattern
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def ov_runner(path, threads=2, hint="LATENCY", streams=1, precision="f32"):
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint, "NUM_STREAMS": streams,
           "INFERENCE_PRECISION_HINT": precision}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    req = compiled.create_infer_request()

    def run(x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()
    return run


def paddle_runner(files, threads=2, mkldnn=True, cache=10):
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.backends.paddle import PaddleBackend

    b = PaddleBackend(files, EngineOptions(cpu_threads=threads, enable_mkldnn=mkldnn, mkldnn_cache_capacity=cache))
    return b.run


def quantize_int8(src: Path, dst: Path) -> Path:
    if not dst.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rendered", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args(argv)

    os.environ["OCRFLEET_HOME"] = str(RESULTS / "home")
    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.convert import onnx_path
    from ocrfleet.recognition.decode import CTCDecoder
    from ocrfleet.recognition.engine import plan_batches
    from ocrfleet.recognition.preprocess import make_batch

    files = sources.resolve(None, v4_model_dir())
    onnx = onnx_path(files)
    int8 = quantize_int8(onnx, RESULTS / "home" / "v4-int8-dynamic.onnx")
    lines = load_lines(a.rendered)
    images = [cv2.imread(ln["path"], cv2.IMREAD_COLOR) for ln in lines]
    shape = files.input_shape

    variants = [
        Variant("ort default (engine)", ort_runner(onnx)),
        Variant("ort pack=sorted", ort_runner(onnx), pack="sorted"),
        Variant("ort pack=paddleocr", ort_runner(onnx), pack="paddleocr"),
        Variant("ort no spinning", ort_runner(onnx, spin=False)),
        Variant("ort 1 thread", ort_runner(onnx, threads=1)),
        Variant("ort opt=basic", ort_runner(onnx, opt="basic")),
        Variant("ort int8 dynamic", ort_runner(int8)),
        Variant("ov default (engine)", ov_runner(onnx)),
        Variant("ov pack=sorted", ov_runner(onnx), pack="sorted"),
        Variant("ov THROUGHPUT hint", ov_runner(onnx, hint="THROUGHPUT", streams=1)),
        Variant("ov 1 thread", ov_runner(onnx, threads=1)),
        Variant("ov bf16", ov_runner(onnx, precision="bf16")),
        Variant("ov bf16 pack=sorted", ov_runner(onnx, precision="bf16"), pack="sorted"),
        Variant("ov int8 dynamic onnx", ov_runner(int8)),
        Variant("paddle default (engine)", paddle_runner(files)),
        Variant("paddle pack=sorted", paddle_runner(files), pack="sorted"),
        Variant("paddle mkldnn cache 100", paddle_runner(files, cache=100)),
        Variant("paddle no mkldnn", paddle_runner(files, mkldnn=False)),
    ]
    if a.only:
        variants = [v for v in variants if any(o in v.name for o in a.only)]
    decoder = CTCDecoder(files.characters, variants[0].run(np.zeros((1, 3, 48, 320), np.float32)).shape[2])
    sizes = [im.shape[:2] for im in images]

    def run_once(v: Variant, record: bool) -> list[str]:
        out = [None] * len(images)
        pre = mdl = 0.0
        for idx in plan_batches(sizes, shape, a.batch_size, v.pack):
            t0 = time.perf_counter()
            batch = make_batch([images[i] for i in idx], shape)
            t1 = time.perf_counter()
            probs = v.run(batch)
            t2 = time.perf_counter()
            pre, mdl = pre + t1 - t0, mdl + t2 - t1
            for i, (text, _) in zip(idx, decoder(probs)):
                out[i] = text
        if record:
            v.pre_s, v.model_s = pre, mdl
        return out

    for v in variants:
        v.texts = run_once(v, False)  # warm-up + outputs
    for r in range(a.rounds):
        s = r % len(variants)
        for v in variants[s:] + variants[:s]:
            t = time.perf_counter()
            run_once(v, True)
            v.lps.append(len(images) / (time.perf_counter() - t))
        print(f"  round {r + 1} done", flush=True)

    ref = next((v.texts for v in variants if v.name == "ort default (engine)"), variants[0].texts)
    rows = []
    hdr = f"{'variant':<26} {'lines/s':>8} {'=fp32 exact':>11} {'acc':>6} {'preproc share':>13}"
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for v in variants:
        row = {"variant": v.name, "pack": v.pack, "lines_per_s": statistics.median(v.lps), "rounds": v.lps,
               "same_text_as_fp32_exact": sum(x == y for x, y in zip(v.texts, ref)) / len(ref),
               "accuracy": sum(correct(t, ln) for t, ln in zip(v.texts, lines)) / len(lines),
               "preprocess_share": v.pre_s / max(1e-9, v.pre_s + v.model_s)}
        rows.append(row)
        print(f"{v.name:<26} {row['lines_per_s']:8.1f} {row['same_text_as_fp32_exact']:11.1%} "
              f"{row['accuracy']:6.1%} {row['preprocess_share']:13.1%}")
    out = RESULTS / f"tuning-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "lines": len(lines),
                               "batch_size": a.batch_size, "load_avg_end": os.getloadavg(), "rows": rows},
                              indent=1), encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
