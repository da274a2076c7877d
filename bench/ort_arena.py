#!/usr/bin/env python3
"""Memory levers of a page worker, measured as the worker runs a page: PP-OCRv5 mobile det + rec
(ONNX Runtime, 1 thread each), every page of ``bench/fleet_pages.py`` detected at PaddleOCR's
default size (``tasks.pages.det_params``), cropped, its lines recognised in batches of 8
(the worker's ``default_batch_size``). Each configuration runs in its own process, the
configurations interleaved (order rotated per round):

    PYTHONPATH=$PWD .venv/bin/python bench/ort_arena.py --rounds 3 arena=0 arena=512
    PYTHONPATH=$PWD .venv/bin/python bench/ort_arena.py arena=0 arena=0,MALLOC_ARENA_MAX=2 arena=512,trim=1

A configuration is comma-separated ``KEY=VALUE``: ``arena=MB`` (``share_cpu_arena(MB)``; 0: one
arena per session, as before), ``cfg=JSON`` (alone: a shared arena with this ``onnxruntime.OrtArenaCfg``
instead, e.g. ``cfg={"arena_extend_strategy":1}``), ``trim=1`` (glibc ``malloc_trim(0)`` after every
page), anything else an environment variable of the child (``MALLOC_ARENA_MAX=2``,
``MALLOC_MMAP_THRESHOLD_=131072``: glibc reads them at start).

Per configuration: ``VmHWM`` (peak RSS) after loading + warming and after the pages, ``VmRSS``
after the pages, detection and recognition seconds (the median round), and whether every page's
text equals the first configuration's. Writes JSON to bench/results/ort-arena-*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def parse(config: str) -> tuple[dict, dict]:
    """(this bench's options, the child's extra environment) of one configuration string."""
    opts, env = {}, {}
    for pair in [config] if config.startswith("cfg=") else filter(None, config.split(",")):
        key, _, value = pair.partition("=")
        if key in ("arena", "trim", "cfg"):
            opts[key] = value
        else:
            env[key] = value
    return opts, env


def child(config: str) -> dict:
    import numpy as np

    from bench.fleet_pages import DATA
    from ocrfleet.config.settings import Settings
    from ocrfleet.detection import TextDetection
    from ocrfleet.ocr.geometry import crop_line, sort_boxes
    from ocrfleet.recognition.backends import onnxruntime as ort_backend
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.recognition.inputs import decode_image_bytes, render_pdf_bytes
    from ocrfleet.recognition.sources import resolve
    from ocrfleet.tasks.pages import det_params

    opts, _ = parse(config)
    if "cfg" in opts:  # a shared arena of another configuration (not kept: see docs/pages.md)
        import onnxruntime as ort

        cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(json.loads(opts["cfg"])))
        ort_backend._arena_mb, ort_backend._arena_registered = -1, True
    elif int(opts.get("arena", 0)) > 0:
        ort_backend.share_cpu_arena(int(opts["arena"]))
    from ocrfleet import glibc

    trim = glibc.malloc_trim if opts.get("trim") else (lambda: None)
    pages = [decode_image_bytes(p.read_bytes(), str(p)) for p in sorted((DATA / "receipts/wildreceipt").glob("*.jpeg"))]
    for name in ("text.pdf", "multipage.pdf"):
        pages += [img for _, img in render_pdf_bytes((DATA / "pdf" / name).read_bytes(), name)]
    det = TextDetection(model_name="PP-OCRv5_mobile_det", cpu_threads=1, backend="onnxruntime")
    rec = Recognizer(resolve("PP-OCRv5_mobile_rec"), EngineOptions(cpu_threads=1), backend="onnxruntime")
    det.detect(np.full((64, 64, 3), 255, np.uint8))  # the worker's warm-ups (workers/models.py, page_models.py)
    rec.recognize([np.full((48, 160, 3), 255, np.uint8)], batch_size=1)
    hwm_start = proc_status_mb("VmHWM")
    params = det_params(Settings(), det)
    det_s = rec_s = 0.0
    texts = []
    for page in pages:
        t0 = time.perf_counter()
        polys, _ = det.detect(page, **params)
        crops = [c for c in (crop_line(page, p) for p in sort_boxes(polys)) if c is not None]
        t1 = time.perf_counter()
        texts.append([t for t, _ in rec.recognize(crops, batch_size=8)] if crops else [])
        det_s, rec_s = det_s + t1 - t0, rec_s + time.perf_counter() - t1
        trim()
    return {"hwm_start_mb": hwm_start, "hwm_mb": proc_status_mb("VmHWM"), "rss_mb": proc_status_mb("VmRSS"),
            "det_s": det_s, "rec_s": rec_s, "texts": texts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="configurations, e.g. arena=0 arena=512")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    if not args.configs:
        ap.error("give at least one configuration")
    runs: dict[str, list[dict]] = {c: [] for c in args.configs}
    for r in range(args.rounds):
        order = args.configs[r % len(args.configs):] + args.configs[:r % len(args.configs)]
        for config in order:
            env = dict(os.environ, **parse(config)[1])
            out = subprocess.run([sys.executable, __file__, "--child", config], env=env, cwd=REPO,
                                 check=True, capture_output=True, text=True).stdout
            runs[config].append(json.loads(out.splitlines()[-1]))
            print(f"round {r} {config}: {({k: round(v, 1) for k, v in runs[config][-1].items() if k != 'texts'})}",
                  flush=True)
    first = runs[args.configs[0]][0]["texts"]
    rows = []
    for config, got in runs.items():
        det_s = statistics.median(g["det_s"] for g in got)
        rec_s = statistics.median(g["rec_s"] for g in got)
        same = sum(a == b for a, b in zip(first, got[0]["texts"]))
        rows.append({"config": config, "hwm_start_mb": max(g["hwm_start_mb"] for g in got),
                     "hwm_mb": max(g["hwm_mb"] for g in got), "rss_mb": max(g["rss_mb"] for g in got),
                     "det_s": det_s, "rec_s": rec_s, "same_pages": f"{same}/{len(first)}"})
    base = rows[0]
    print(f"{'config':40s} {'HWM start':>9s} {'HWM':>6s} {'RSS':>6s} {'det s':>7s} {'rec s':>7s} "
          f"{'det x':>6s} {'rec x':>6s} same text")
    for row in rows:
        print(f"{row['config']:40s} {row['hwm_start_mb']:9.0f} {row['hwm_mb']:6.0f} {row['rss_mb']:6.0f} "
              f"{row['det_s']:7.2f} {row['rec_s']:7.2f} {row['det_s'] / base['det_s']:6.3f} "
              f"{row['rec_s'] / base['rec_s']:6.3f} {row['same_pages']}")
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
           "loadavg": os.getloadavg(), "command": " ".join(sys.argv), "rounds": args.rounds, "rows": rows}
    dest = REPO / "bench" / "results"
    dest.mkdir(exist_ok=True)
    (dest / f"ort-arena-{int(time.time())}.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
