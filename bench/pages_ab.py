#!/usr/bin/env python3
"""Pages, per page and in one process: faster-paddle 1.0.4 against ocrfleet variants, each page
run ``--repeat`` times by every engine in turn, the fastest run per page kept.

    .venv/bin/pip install faster-paddle==1.0.4        # beside ocrfleet, in the same venv
    PYTHONPATH=$PWD .venv/bin/python bench/pages_ab.py --size tiny --repeat 5
    PYTHONPATH=$PWD .venv/bin/python bench/pages_ab.py --variants '{"fast": {"preset": "fast"},
        "pad64": {"preset": "fast", "text_rec_input_shape": [3, 48, 64]}}'
    PYTHONPATH=$PWD .venv/bin/python bench/pages_ab.py --fp-variants '{"fp-320": {"rec_min_width": 320}}'

Why a second page benchmark: ``bench/pages.py`` gives each engine its own process and times whole
rounds of the 19 pages; on a shared 2-core machine those rounds swing by 10 % or more, more than
the differences left to measure. Here both engines live in one process (faster-paddle's wheel
imports beside ocrfleet), take turns page by page (rotated order, 30 ms apart so one engine's
spinning threads have stopped before the next runs), and the fastest of ``--repeat`` runs per page
is kept, which removes most of the noise; it also shows which pages an engine loses on. Same
pages as ``bench/pages.py`` (``build_pages``), decoding inside the timed call.

Reported: per page the fastest time of each engine (ms) and the lines each found; the sums of the
fastest and of the median times, each engine's ratio to faster-paddle (> 1: faster than it), and
its end-to-end lines right on the annotated pages (``bench/pages.py``'s ``accuracy``: ground-truth
lines matched at IoU >= 0.5 with the same text).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pages import ROOT, accuracy, build_pages, load_page_engine  # noqa: E402

PAUSE_S = 0.03


def load(size: str, variants: dict, fp_variants: dict) -> dict:
    """{engine: path -> [(poly, text)]}, built by ``bench/pages.py``'s own engine loader:
    faster-paddle as it comes (the reference), ``fp_variants`` (name -> extra ``OcrEngine``
    keyword arguments, e.g. ``{"rec_min_width": 320}``) and the ocrfleet ``variants``."""
    import importlib.util

    if importlib.util.find_spec("faster_paddle") is None:
        raise SystemExit("faster-paddle is not importable here: pip install faster-paddle==1.0.4 into this venv")
    engines = {"faster-paddle": ("faster-paddle", {"model_size": size})}
    for name, kw in fp_variants.items():
        engines[name] = ("faster-paddle", {"model_size": size, **kw})
    for name, kw in variants.items():
        engines[name] = ("ocrfleet", {"det": f"PP-OCRv6_{size}_det", "rec": f"PP-OCRv6_{size}_rec", **kw})
    return {name: load_page_engine(kind, opts, {}) for name, (kind, opts) in engines.items()}


def measure(runs: dict, pages: list[str], repeat: int) -> dict:
    times = {k: [[] for _ in pages] for k in runs}
    lines = {k: [[] for _ in pages] for k in runs}
    for run in runs.values():
        run(pages[0])  # warm-up
    names = list(runs)
    for rep in range(repeat):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for i, page in enumerate(pages):
            for name in order:
                time.sleep(PAUSE_S)
                t0 = time.perf_counter()
                lines[name][i] = runs[name](page)
                times[name][i].append(time.perf_counter() - t0)
    return {"times": times, "lines": lines}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--variants", default='{"fast": {"preset": "fast"}}',
                    help="JSON: name -> extra PaddleOCR keyword arguments, one ocrfleet engine each")
    ap.add_argument("--fp-variants", default="{}",
                    help="JSON: name -> extra faster-paddle OcrEngine keyword arguments (e.g. rec_min_width), "
                         "one more faster-paddle engine each")
    ap.add_argument("--no-shared-pages", dest="shared", action="store_false")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pages_ab.json")
    args = ap.parse_args(argv)
    runs = load(args.size, json.loads(args.variants), json.loads(args.fp_variants))
    with tempfile.TemporaryDirectory(prefix="ocrfleet-bench-pages-ab-") as tmp:
        pages, truth = build_pages(Path(tmp), args.shared)
        got = measure(runs, pages, args.repeat)
    scored = {k: accuracy(v, pages, truth).values() for k, v in got["lines"].items()}
    right = {k: sum(round(a["e2e"] * a["lines"]) for a in v) for k, v in scored.items()}
    scored_lines = sum(a["lines"] for a in next(iter(scored.values())))
    best = {k: [min(ts) for ts in v] for k, v in got["times"].items()}
    median = {k: [sorted(ts)[len(ts) // 2] for ts in v] for k, v in got["times"].items()}
    ref_best, ref_median = sum(best["faster-paddle"]), sum(median["faster-paddle"])
    print(f"{'page':28}" + "".join(f"{k[:16]:>18}" for k in runs))
    for i, page in enumerate(pages):
        print(f"{Path(page).name[:28]:28}" + "".join(
            f"{1000 * best[k][i]:10.1f} ms {len(got['lines'][k][i]):3d}L" for k in runs))
    summary = {k: {"sum_fastest_s": sum(best[k]), "sum_median_s": sum(median[k]),
                   "vs_faster_paddle_fastest": ref_best / sum(best[k]),
                   "vs_faster_paddle_median": ref_median / sum(median[k]),
                   "lines_right": right[k], "lines_truth": scored_lines} for k in runs}
    for k, s in summary.items():
        print(f"{k:16} fastest {s['sum_fastest_s']:6.3f} s ({s['vs_faster_paddle_fastest']:.3f}x)   "
              f"median {s['sum_median_s']:6.3f} s ({s['vs_faster_paddle_median']:.3f}x)   "
              f"lines right {s['lines_right']} of {s['lines_truth']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "size": args.size, "repeat": args.repeat,
        "pages": [Path(p).name for p in pages], "summary": summary, "fastest_s": best,
        "lines": {k: [len(v) for v in vs] for k, vs in got["lines"].items()},
        "command": " ".join(["python bench/pages_ab.py", *(argv if argv is not None else sys.argv[1:])])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
