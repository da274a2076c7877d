#!/usr/bin/env python3
"""How close the CPU engine runs to the machine's limit: FLOPs per line of every bundled
recognition model at typical widths, the achieved GFLOP/s, and the machine's measured peak.

    . .venv/bin/activate
    python bench/flops.py                       # ~2 min on 2 cores
    python bench/flops.py --widths 160 320 640 --batch-size 8 --seconds 4

FLOPs: 2 x the multiply-adds of every Conv, MatMul and Gemm node (the ops that carry the work;
element-wise ops, softmax and normalisation are left out, so the figure is a slight
under-count). Shapes are the real ones: the graph is run once by ONNX Runtime with every
intermediate tensor exposed, at batch 1 and the given width (height 48, as the models take).

Achieved: lines/s of ocrfleet's ONNX Runtime and OpenVINO backends on a batch of ``--batch-size``
random lines of that width, times FLOPs per line. Peak: the best of a float32 GEMM in ONNX
Runtime (MLAS, the kernels the backends use) and in NumPy's BLAS, 1024..2048 square, on the
threads the backends use. Everything runs in this one process, interleaved: on a shared machine
the ratio achieved / peak is the figure to read. Writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ocrfleet.recognition import sources
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.backends.select import create

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ["PP-OCRv5_mobile_rec", "PP-OCRv6_tiny_rec", "PP-OCRv6_small_rec"]
BACKENDS = ["onnxruntime", "openvino"]


def _session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def tensor_shapes(model: onnx.ModelProto, width: int) -> dict[str, tuple]:
    """Every tensor's real shape for one line of ``width`` px (initializers included)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    shapes = {i.name: tuple(i.dims) for i in m.graph.initializer}
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for out in node.output:
            if out and out not in have:
                m.graph.output.append(helper.ValueInfoProto(name=out))
                have.add(out)
    sess = _session(m, 1)
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {inp.name: np.random.rand(1, 3, 48, width).astype(np.float32)})
    shapes.update({n: tuple(np.shape(v)) for n, v in zip(names, values)})
    shapes[inp.name] = (1, 3, 48, width)
    for c in (n for n in m.graph.node if n.op_type == "Constant"):
        for a in c.attribute:
            if a.name == "value":
                shapes[c.output[0]] = tuple(numpy_helper.to_array(a.t).shape)
    return shapes


def graph_flops(model: onnx.ModelProto, width: int) -> float:
    shapes = tensor_shapes(model, width)
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # (Cout, Cin/groups, kh, kw)
            out = shapes[node.output[0]]
            total += 2.0 * np.prod(out) * np.prod(w[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            trans_a = trans_b = 0
            for at in node.attribute:
                trans_a = at.i if at.name == "transA" else trans_a
                trans_b = at.i if at.name == "transB" else trans_b
            k = a[-2] if trans_a else a[-1]
            n = b[-2] if trans_b else b[-1]
            total += 2.0 * np.prod(shapes[node.output[0]][:-1]) * k * n
    return float(total)


def gemm_peak(threads: int, seconds: float) -> dict:
    """GFLOP/s of a square float32 GEMM: ONNX Runtime (MLAS) and NumPy, best size."""
    out = {}
    for n in (1024, 1536, 2048):
        a = np.random.rand(n, n).astype(np.float32)
        b = np.random.rand(n, n).astype(np.float32)
        g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])])
        sess = _session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), threads)
        for name, fn in (("onnxruntime", lambda: sess.run(None, {"a": a, "b": b})),
                         ("numpy", lambda: a @ b)):
            fn()
            runs, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3:
                fn()
                runs += 1
            gf = 2.0 * n ** 3 * runs / (time.perf_counter() - t0) / 1e9
            out[name] = max(out.get(name, 0.0), gf)
    return {k: round(v, 1) for k, v in out.items()}


def lines_per_s(backend, width: int, batch_size: int, seconds: float) -> float:
    x = np.random.rand(batch_size, 3, 48, width).astype(np.float32)
    backend.run(x)
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.run(x)
        runs += 1
    return runs * batch_size / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="FLOPs per line, achieved GFLOP/s, GEMM peak")
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--widths", nargs="+", type=int, default=[160, 320, 640])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = ap.parse_args(argv)
    opts = EngineOptions(cpu_threads=os.cpu_count() or 1)
    threads = opts.threads
    peak_before = gemm_peak(threads, args.seconds)
    rows = []
    for name in args.models:
        files = sources.resolve(name)
        model = onnx.load(str(onnx_path(files)))
        backends = {b: create(b, files, opts) for b in BACKENDS}
        for w in args.widths:
            fl = graph_flops(model, w)
            row = {"model": name, "width": w, "mflop_per_line": round(fl / 1e6, 1)}
            for b, be in backends.items():
                lps = lines_per_s(be, w, args.batch_size, args.seconds)
                row[f"{b}_lines_s"] = round(lps, 1)
                row[f"{b}_gflop_s"] = round(lps * fl / 1e9, 2)
            rows.append(row)
            print(row, flush=True)
    peak_after = gemm_peak(threads, args.seconds)
    peak = max(*peak_before.values(), *peak_after.values())
    print(f"\nGEMM peak ({threads} threads): before {peak_before}, after {peak_after} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"| model | width | MFLOP/line | {' | '.join(f'{b} lines/s | {b} GFLOP/s (% of peak)' for b in BACKENDS)} |")
    print("|---|---:|---:|" + "---:|---:|" * len(BACKENDS))
    for r in rows:
        cells = " | ".join(f"{r[f'{b}_lines_s']} | {r[f'{b}_gflop_s']} ({100 * r[f'{b}_gflop_s'] / peak:.0f} %)"
                           for b in BACKENDS)
        print(f"| {r['model']} | {r['width']} | {r['mflop_per_line']} | {cells} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"flops-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"threads": threads, "batch_size": args.batch_size, "peak_gflop_s": peak,
                               "gemm_before": peak_before, "gemm_after": peak_after,
                               "loadavg": os.getloadavg(), "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
