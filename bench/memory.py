#!/usr/bin/env python3
"""RSS of one recognition process over many lines of random widths and batch sizes (issue 12:
flat RSS over 50,000 recognitions, <= 400 MB per process).

    python bench/memory.py --models PP-OCRv5_mobile_rec PP-OCRv6_small_rec \\
        --backends onnxruntime openvino --recognitions 50000

Every model x backend pair runs in its own child process (nothing shared, RSS is that pair's
alone), one after the other, with a progress bar. Lines: the 92 real labelled lines of
tests/data/real/rec plus ``--rendered`` lines from bench/render_lines.py (English, digits and
Chinese), each stretched to a random width (``--stretch``, x0.2-x1.2 log-uniform: padded
widths 320-3,200 px, mean ~400) and sent in ``recognize``
calls of 1-16 lines (``ocrfleet.testing.soak``): nearly every model call is a new input shape.
RSS (VmRSS) is sampled every ``--every`` lines; reported: RSS after loading, the peak (VmHWM, the
high-water mark between samples too; the goal's figure), the largest sample and the final RSS,
and the least-squares slope in MB per 10,000 lines after ``--warmup`` lines (and over the last
half). JSON to bench/results/memory-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REC = ROOT / "tests" / "data" / "real" / "rec"
GOAL_MB, GOAL_SLOPE = 400.0, 1.0


def pool(rendered: int, seed: int) -> list:
    sys.path.insert(0, str(ROOT / "bench"))
    import render_lines
    from ocrfleet.testing.soak import read_lines

    tsvs = [REC / "mmocr_toy" / "labels.tsv", REC / "wildreceipt_lines" / "labels.tsv"]
    if rendered:
        tsvs.append(render_lines.ensure(RESULTS / f"rendered-{rendered}-seed{seed}", rendered, seed))
    return [img for tsv in tsvs for img in read_lines(tsv)]


def child(a) -> None:
    """One model x backend: JSON lines on stdout ({"mark": [n, mb]} ... then {"result": ...})."""
    import numpy as np

    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.testing.soak import rss_mb, slope_after, soak, varied_batches

    out = sys.stdout
    sys.stdout = sys.stderr
    lines = pool(a.rendered, a.seed)
    before = rss_mb()
    t = time.perf_counter()
    rec = Recognizer(sources.resolve(a.models[0], None), EngineOptions(cpu_threads=a.cpu_threads),
                     backend=a.backends[0])
    load_s, loaded = time.perf_counter() - t, rss_mb()

    def mark(n, mb):
        print(json.dumps({"mark": [n, round(mb, 1)]}), file=out, flush=True)

    t = time.perf_counter()
    marks = soak(lambda batch: rec.recognize(batch, batch_size=len(batch)),
                 varied_batches(lines, np.random.default_rng(a.seed), a.max_batch, tuple(a.stretch)),
                 a.recognitions, a.every, mark, time.monotonic() + 60 * a.max_minutes)
    wall, done = time.perf_counter() - t, marks[-1][0]
    res = {"model": a.models[0], "backend": rec.backend_name, "cpu_threads": a.cpu_threads,
           "recognitions": done, "recognitions_asked": a.recognitions,
           "stretch": a.stretch, "max_batch": a.max_batch, "pool_lines": len(lines), "load_s": round(load_s, 2),
           "rss_before_load_mb": round(before, 1), "rss_loaded_mb": round(loaded, 1),
           "rss_peak_mb": max(mb for _, mb in marks), "rss_hwm_mb": round(rss_mb(field="VmHWM"), 1),
           "rss_final_mb": marks[-1][1],
           "warmup": a.warmup, "slope_mb_per_10k_after_warmup": slope_after(marks, a.warmup),
           "slope_mb_per_10k_last_half": slope_after(marks, done // 2),
           "lines_per_s": round(done / wall, 1), "wall_s": round(wall, 1), "rss_by_lines": marks}
    print(json.dumps({"result": res}), file=out, flush=True)


def run_pair(model: str, backend: str, a) -> dict:
    from tqdm import tqdm

    cmd = [sys.executable, __file__, "--child", "--models", model, "--backends", backend,
           "--recognitions", str(a.recognitions), "--every", str(a.every), "--warmup", str(a.warmup),
           "--cpu_threads", str(a.cpu_threads), "--seed", str(a.seed), "--rendered", str(a.rendered),
           "--max_batch", str(a.max_batch), "--max_minutes", str(a.max_minutes),
           "--stretch", *map(str, a.stretch)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    result = None
    with tqdm(total=a.recognitions, desc=f"{model} {backend}", unit="line", file=sys.stderr) as bar:
        for line in proc.stdout:
            msg = json.loads(line)
            if "mark" in msg:
                n, mb = msg["mark"]
                bar.update(n - bar.n)
                bar.set_postfix(rss_mb=mb)
            else:
                result = msg["result"]
    if proc.wait() != 0 or result is None:
        return {"model": model, "backend": backend, "error": f"child exited {proc.returncode}"}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["PP-OCRv5_mobile_rec"])
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    ap.add_argument("--recognitions", "--lines", type=int, default=50_000)
    ap.add_argument("--warmup", type=int, default=None, help="lines before the slope fit (default: 10%%, >= 2,000)")
    ap.add_argument("--every", type=int, default=None, help="RSS sample interval (default: recognitions / 100)")
    ap.add_argument("--cpu_threads", type=int, default=1, help="1 = a prefork worker child's setting")
    ap.add_argument("--max_batch", type=int, default=16)
    ap.add_argument("--stretch", type=float, nargs=2, default=[0.2, 1.2],
                    help="width scale range of the lines (log-uniform); wider = more compute per line")
    ap.add_argument("--max_minutes", type=float, default=float("inf"),
                    help="stop a pair after this long (the JSON records the lines actually done)")
    ap.add_argument("--rendered", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.warmup = a.warmup if a.warmup is not None else max(2000, a.recognitions // 10)
    a.every = a.every or max(50, a.recognitions // 100)
    if a.child:
        child(a)
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    pool(a.rendered, a.seed)  # render once, before any child
    started, load0 = time.strftime("%Y-%m-%dT%H:%M:%S"), os.getloadavg()
    results = [run_pair(m, b, a) for m in a.models for b in a.backends]
    print(f"\n{'model':<22} {'backend':<12} {'loaded':>7} {'peak':>6} {'final':>6} {'MB/10k':>7} "
          f"{'last half':>9} {'lines/s':>8}  goal (<= {GOAL_MB:.0f} MB, < {GOAL_SLOPE} MB/10k)")
    for r in results:
        if "error" in r:
            print(f"{r['model']:<22} {r['backend']:<12} {r['error']}")
            continue
        s, s2 = r["slope_mb_per_10k_after_warmup"], r["slope_mb_per_10k_last_half"]
        r["goal_met"] = r["rss_hwm_mb"] <= GOAL_MB and s is not None and s < GOAL_SLOPE
        print(f"{r['model']:<22} {r['backend']:<12} {r['rss_loaded_mb']:7.0f} {r['rss_hwm_mb']:6.0f} "
              f"{r['rss_final_mb']:6.0f} {s if s is not None else float('nan'):7.2f} "
              f"{s2 if s2 is not None else float('nan'):9.2f} {r['lines_per_s']:8.1f}  "
              f"{'met' if r['goal_met'] else 'NOT met'}")
    out = Path(a.out) if a.out else RESULTS / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"command": " ".join([Path(sys.executable).name, *sys.argv]), "started": started,
                               "load_avg_start": load0, "load_avg_end": os.getloadavg(),
                               "cores": len(os.sched_getaffinity(0)), "results": results}, indent=1))
    print(f"wrote {out} (load average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f})")
    return 0 if all(r.get("goal_met") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
