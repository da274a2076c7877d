"""The GPU check of the torch backend: parity with the CPU, latency, throughput, memory.

Runs on the lent GPU machine from ``bench/gpu_check.sh`` (the ocrfleet wheel installed with
--no-deps; models, lines and CPU reference texts from the folder ``bench/gpu_prepare.py``
wrote). For PP-OCRv5_mobile_rec and PP-OCRv6_tiny_rec, fp32 and fp16:

* parity: text identical to the CPU reference (ONNX Runtime) on >= 99.5 % of the real lines,
  and the largest score difference where the text is equal;
* per-line latency at batch 1: end to end (``Recognizer.recognize``: resize, normalise, copy,
  model, argmax, decode) and model only (one 48x320 line through ``run_argmax``);
* lines/s at batch 8 / 32 / 128: end to end over all lines, and model only on 48x320 batches;
* peak GPU memory (torch's allocator) per configuration.

Writes gpu_check.json and gpu_check.md (a short table) to --out. ``--cpu-smoke`` runs the same
code on the CPU (fp32, a few lines, short timings) so it is tested where there is no GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

MIN_TEXT_MATCH = 0.995
BATCHES = (8, 32, 128)


def load_carry(carry: Path):
    from ocrfleet.recognition.inputs import decode_image_bytes
    from ocrfleet.recognition.sources import ModelFiles

    manifest = json.loads((carry / "manifest.json").read_text(encoding="utf-8"))
    rels = [r for r in (carry / "lines" / "lines.txt").read_text(encoding="utf-8").splitlines() if r]
    images = [decode_image_bytes((carry / "lines" / r).read_bytes(), r) for r in rels]
    models = {}
    for name in manifest["models"]:
        meta = json.loads((carry / "models" / name / "model.json").read_text(encoding="utf-8"))
        files = ModelFiles(name, "onnx", carry / "models" / name / "model.onnx", None, meta["characters"],
                           tuple(meta["input_shape"]), source=f"gpu_carry:{meta['source']}")
        ref = {}
        for row in (carry / "reference" / f"{name}.tsv").read_text(encoding="utf-8").splitlines():
            rel, text, score = row.split("\t")
            ref[rel] = (text, float(score))
        models[name] = (files, [ref[r] for r in rels])
    return manifest, rels, images, models


def timed(fn, min_seconds: float, max_calls: int) -> list[float]:
    """Seconds per call, calling until min_seconds have passed (at least 3, at most max_calls)."""
    out = []
    start = time.perf_counter()
    while len(out) < 3 or (time.perf_counter() - start < min_seconds and len(out) < max_calls):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


class Gpu:
    def __init__(self, torch, cuda: bool):
        self.torch, self.cuda = torch, cuda

    def reset(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_mib(self):
        return round(self.torch.cuda.max_memory_allocated() / 2**20, 1) if self.cuda else None


def check_one(files, ref, images, opts, gpu: Gpu, cfg) -> dict:
    from ocrfleet.recognition.engine import Recognizer

    gpu.reset()
    t0 = time.perf_counter()
    rec = Recognizer(files, opts, backend="torch")
    row = {"model": files.name, "precision": opts.precision, "load_s": round(time.perf_counter() - t0, 2)}
    # parity (first pass over the lines: CUDA graphs are captured for recurring shapes here)
    t0 = time.perf_counter()
    got = rec.recognize(images, batch_size=8)
    row["first_pass_s"] = round(time.perf_counter() - t0, 2)
    diffs = [(i, w[0], g[0]) for i, (w, g) in enumerate(zip(ref, got)) if w[0] != g[0]]
    same = [abs(w[1] - g[1]) for w, g in zip(ref, got) if w[0] == g[0]]
    row["lines"] = len(images)
    row["text_equal"] = round(1 - len(diffs) / len(images), 5)
    row["parity_ok"] = row["text_equal"] >= MIN_TEXT_MATCH
    row["max_score_diff"] = round(max(same), 6) if same else None
    row["text_diffs"] = [{"line": i, "cpu": w, "gpu": g} for i, w, g in diffs[:10]]
    # end to end: lines/s per batch size, and per-line latency at batch 1
    row["e2e_lines_per_s"] = {}
    for bs in cfg.batches:
        rec.recognize(images, batch_size=bs)  # warm (graphs for this batch size's shapes)
        t = min(timed(lambda: rec.recognize(images, batch_size=bs), cfg.min_seconds, cfg.repeats))
        row["e2e_lines_per_s"][bs] = round(len(images) / t, 1)
    few = images[:cfg.latency_lines]
    for im in few:
        rec.recognize([im], batch_size=1)
    lat = [min(timed(lambda: rec.recognize([im], batch_size=1), 0, 3)) for im in few]
    row["e2e_ms_per_line_bs1"] = {"median": round(1e3 * statistics.median(lat), 3),
                                  "p90": round(1e3 * sorted(lat)[int(0.9 * (len(lat) - 1))], 3)}
    # model only: fixed 48 x W batches through run_argmax (copy in, model, argmax, copy out)
    c, h, w = files.input_shape
    row["model_ms_per_call"], row["model_lines_per_s"] = {}, {}
    for bs in (1, *cfg.batches):
        x = np.random.default_rng(0).uniform(-1, 1, (bs, c, h, w)).astype(np.float32)
        for _ in range(3):
            rec.backend.run_argmax(x)
        t = statistics.median(timed(lambda: rec.backend.run_argmax(x), cfg.min_seconds, cfg.model_calls))
        row["model_ms_per_call"][bs] = round(1e3 * t, 3)
        row["model_lines_per_s"][bs] = round(bs / t, 1)
    row["cuda_graphs"] = len(getattr(rec.backend, "graphs", {}))
    row["peak_gpu_mib"] = gpu.peak_mib()
    return row


def table(rows: list[dict], batches) -> str:
    head = ["model", "prec", "text equal", "max score diff", "ms/line bs1 (e2e / model)"]
    head += [f"lines/s bs{b} (e2e / model)" for b in batches] + ["peak MiB"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['precision']} | error: {r['error']} |")
            continue
        cells = [r["model"], r["precision"], f"{100 * r['text_equal']:.2f} % of {r['lines']}",
                 str(r["max_score_diff"]),
                 f"{r['e2e_ms_per_line_bs1']['median']} / {r['model_ms_per_call'][1]}"]
        cells += [f"{r['e2e_lines_per_s'][b]:.0f} / {r['model_lines_per_s'][b]:.0f}" for b in batches]
        cells.append(str(r["peak_gpu_mib"]))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--carry", type=Path, default=Path("bench/gpu_carry"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-smoke", action="store_true", help="CPU, fp32, few lines, short timings")
    ap.add_argument("--budget-s", type=float, default=400, help="skip configurations that would start later")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    import torch

    from ocrfleet.recognition.backends.base import EngineOptions

    cuda = not args.cpu_smoke
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch (use --cpu-smoke on a CPU machine)")
    manifest, rels, images, models = load_carry(args.carry)
    cfg = argparse.Namespace(batches=BATCHES, min_seconds=1.0, repeats=5, model_calls=200, latency_lines=200)
    if args.cpu_smoke:
        images = images[:24]
        cfg = argparse.Namespace(batches=(8,), min_seconds=0, repeats=1, model_calls=3, latency_lines=4)
    gpu = Gpu(torch, cuda)
    import ocrfleet

    report = {"device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or 'x86_64'})",
              "ocrfleet_from": str(Path(ocrfleet.__file__).parent),
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "carry": manifest, "cpu_smoke": args.cpu_smoke, "results": [], "skipped": []}
    precisions = ("fp32",) if args.cpu_smoke else ("fp32", "fp16")
    for name, (files, ref) in models.items():
        for prec in precisions:
            if time.perf_counter() - started > args.budget_s:
                report["skipped"].append(f"{name} {prec}: time budget spent")
                continue
            # CPU smoke: one thread (torch's OpenMP pool stalls on a loaded shared machine)
            opts = EngineOptions(device="gpu" if cuda else "cpu", precision=prec, cpu_threads=16 if cuda else 1)
            try:
                row = check_one(files, ref[:len(images)], images, opts, gpu, cfg)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next configuration
                row = {"model": name, "precision": prec, "error": f"{type(exc).__name__}: {exc}"}
            report["results"].append(row)
            print(json.dumps(row), flush=True)
            md = write(report, args.out, cfg, started)  # after each configuration: a timeout keeps these
    md = write(report, args.out, cfg, started)
    print(md)
    return 0 if report["parity_ok"] else 1


def write(report: dict, out: Path, cfg, started: float) -> str:
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["parity_ok"] = bool(report["results"]) and all(r.get("parity_ok") for r in report["results"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    md = f"{report['device']}, torch {report['torch']}, CUDA {report['cuda']}\n\n" + table(report["results"], cfg.batches)
    (out / "gpu_check.md").write_text(md, encoding="utf-8")
    return md


if __name__ == "__main__":
    sys.exit(main())
