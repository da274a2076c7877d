#!/usr/bin/env python3
"""RSS of one recognition process over many lines of random widths and batch sizes.

    python bench/memory.py --model PP-OCRv5_mobile_rec --backend openvino --lines 3000

Prints RSS after loading and every --every lines, and the slope (MB per 10,000 lines) over
the second half of the run, so growth after warm-up shows. Run each backend in its own process.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="PP-OCRv5_mobile_rec")
    ap.add_argument("--model_dir", default=None)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--cpu_threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer

    before = rss_mb()
    rec = Recognizer(sources.resolve(args.model, args.model_dir), EngineOptions(cpu_threads=args.cpu_threads),
                     backend=args.backend)
    loaded = rss_mb()
    rng = np.random.default_rng(args.seed)
    marks, done = [], 0
    while done < args.lines:
        bs = int(rng.integers(1, 17))
        images = [np.full((int(rng.integers(20, 60)), int(rng.integers(20, 900)), 3), 200, np.uint8)
                  for _ in range(bs)]
        rec.recognize(images, batch_size=bs)
        done += bs
        if done // args.every != (done - bs) // args.every:
            marks.append((done, round(rss_mb(), 1)))
    half = [m for m in marks if m[0] >= args.lines / 2]
    slope = None
    if len(half) >= 2:
        x, y = np.array([m[0] for m in half]), np.array([m[1] for m in half])
        slope = round(float(np.polyfit(x, y, 1)[0]) * 10_000, 1)
    print(json.dumps({"model": args.model, "backend": rec.backend_name, "rss_before_load_mb": round(before, 1),
                      "rss_loaded_mb": round(loaded, 1), "rss_by_lines": marks,
                      "slope_mb_per_10k_second_half": slope}))


if __name__ == "__main__":
    main()
