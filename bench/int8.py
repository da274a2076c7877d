#!/usr/bin/env python3
"""Static (calibrated) int8 for a bundled recognition model, and what it costs in accuracy.

    . .venv/bin/activate
    python bench/int8.py --model PP-OCRv5_mobile_rec                      # Conv + MatMul, MinMax
    python bench/int8.py --model PP-OCRv5_mobile_rec --ops Conv --calibration percentile

Calibration lines are rendered by bench/render_lines.py (seed 7, never the evaluation sets) into
a temporary folder. The model is upgraded to opset 13 (per-channel QDQ needs it), pre-processed
and quantised by ONNX Runtime (QDQ, per-channel int8 weights, uint8 activations). Then the fp32
and int8 models recognise every labelled set in ../shared/data/real/rec (or --sets DIR): exact
match and lines/s per set, per engine, in one process. Issue 12's rule: int8 is kept only if
its exact match stays within 0.5 points of fp32 on every set. Writes JSON to bench/results/.
Needs ONNX Runtime's quantisation tools' extra dependency: ``pip install ml_dtypes``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnx.version_converter

from ocrfleet.recognition import sources
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.engine import Recognizer
from ocrfleet.recognition.evaluate import evaluate
from ocrfleet.recognition.preprocess import make_batch

BENCH = Path(__file__).resolve().parent
SETS = BENCH.parent.parent / "shared" / "data" / "real" / "rec"


def quantize(src: Path, dst: Path, calib: list[Path], shape, ops: list[str], method: str) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
        model = onnx.version_converter.convert_version(model, 13)
    up, pre = dst.with_suffix(".up.onnx"), dst.with_suffix(".pre.onnx")
    onnx.save(model, str(up))
    quant_pre_process(str(up), str(pre), skip_symbolic_shape=True)
    name = model.graph.input[0].name

    class Lines(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            p = next(self.it, None)
            if p is None:
                return None
            b = make_batch([cv2.imread(str(p))], shape)
            fixed = np.zeros((1, 3, shape[1], 480), np.float32)  # one shape: percentile/entropy need it
            w = min(480, b.shape[3])
            fixed[..., :w] = b[..., :w]
            return {name: fixed}

    quantize_static(str(pre), str(dst), Lines(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                    calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                      "entropy": CalibrationMethod.Entropy}[method])
    up.unlink()
    pre.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="static int8 vs fp32: accuracy per set and lines/s")
    ap.add_argument("--model", default="PP-OCRv5_mobile_rec")
    ap.add_argument("--ops", default="Conv,MatMul", help="op types to quantise")
    ap.add_argument("--calibration", default="minmax", choices=["minmax", "percentile", "entropy"])
    ap.add_argument("--calibration-lines", type=int, default=200)
    ap.add_argument("--sets", type=Path, default=SETS)
    args = ap.parse_args(argv)
    files = sources.resolve(args.model)
    shape = files.input_shape or (3, 48, 320)
    with tempfile.TemporaryDirectory(prefix="ocrfleet-int8-") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, str(BENCH / "render_lines.py"), str(tmp / "calib"),
                        "--count", str(args.calibration_lines), "--seed", "7"], check=True)
        t0 = time.perf_counter()
        quantize(onnx_path(files), tmp / "int8.onnx", sorted((tmp / "calib" / "imgs").glob("*.png")), shape,
                 args.ops.split(","), args.calibration)
        print(f"quantised in {time.perf_counter() - t0:.0f} s")
        opts = EngineOptions(cpu_threads=2)
        int8 = dataclasses.replace(files, model_file=tmp / "int8.onnx", fmt="onnx", params_file=None, source="int8")
        engines = {"fp32": Recognizer(files, opts, backend="onnxruntime"),
                   "int8": Recognizer(int8, opts, backend="onnxruntime")}
        rows = {}
        for labels in sorted(args.sets.glob("*/labels.tsv")):
            r = {k: evaluate(labels, m, batch_size=8, progress=False) for k, m in engines.items()}
            rows[labels.parent.name] = {k: {"exact": round(100 * v["accuracy"], 1),
                                            "lines_s": round(v["lines_per_s"], 1)} for k, v in r.items()}
            print(labels.parent.name, rows[labels.parent.name], flush=True)
    worst = min(v["int8"]["exact"] - v["fp32"]["exact"] for v in rows.values())
    print(f"worst exact-match change {worst:+.1f} points: int8 {'KEPT' if worst >= -0.5 else 'NOT kept'} "
          "(rule: within 0.5 points on every set)")
    out = BENCH / "results" / f"int8-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "ops": args.ops, "calibration": args.calibration,
                               "worst": worst, "sets": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
