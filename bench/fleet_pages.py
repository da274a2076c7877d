#!/usr/bin/env python3
"""Page jobs end to end (fleet) vs the in-process ``ocrfleet.PaddleOCR`` on the same pages, in one
interleaved run; and the peak RSS of a worker process with the detector + recogniser loaded.

    PYTHONPATH=$PWD .venv/bin/python bench/fleet_pages.py              # ~2-3 min on 2 busy cores
    PYTHONPATH=$PWD .venv/bin/python bench/fleet_pages.py --rounds 5 --worker "--pool prefork -c 1" --engine-threads 1
    PYTHONPATH=$PWD .venv/bin/python bench/fleet_pages.py --rounds 1 --setting ort_shared_arena_mb=0   # an arena per session

Real servers as the fleet tests start them (ocrfleet/testing/servers.py): SeaweedFS S3, a private
redis-server, one ``ocrfleet worker`` subprocess (``--worker``, default ``--pool prefork -c 2``,
``--cpu-threads`` 1 per process) loading ``--det`` + ``--rec`` at start.

Pages: the receipt photos (tests/data/real/receipts/wildreceipt/*.jpeg) and the pages of
tests/data/real/pdf/text.pdf and multipage.pdf (144 dpi), uploaded to s3://inputs/.
Per round, in rotated order:

* ``engine``: ``PaddleOCR`` (same det/rec, textline orientation off, ``cpu_threads`` =
  ``--engine-threads``, default every core) in this process on the decoded pages: pages/s;
* ``fleet``: one page job per page (``mode="page"``; a PDF page by ``pages=[i]``), all submitted
  at once, the clock from the first submit to the last result record: pages/s of Producer →
  Redis → worker (S3 GET, decode/render, detect, crop, recognise, S3 PUT) → backend record.

``ratio`` = fleet pages/s / engine pages/s per round; the median is the figure. The fleet's
text is checked against the engine's. RSS: ``VmHWM`` (peak resident set) of every worker child
from /proc after start-up (models loaded and warmed) and after the last round. Writes JSON to
bench/results/fleet-pages-*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from ocrfleet.testing.servers import RedisServer, WeedS3, Worker, isolated_settings  # noqa: E402  (PYTHONPATH=$PWD)

DATA = REPO / "tests" / "data" / "real"


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def settings_args(pairs: list[str]) -> dict:
    """``NAME=VALUE`` strings as Settings fields (typed as the field is)."""
    import dataclasses

    from ocrfleet.config.settings import Settings, _coerce

    known = {f.name: f for f in dataclasses.fields(Settings)}
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise SystemExit(f"unknown setting {name!r}")
        out[name] = _coerce(known[name], value)
    return out


def upload_pages(s3) -> tuple[list[dict], list]:
    """(job inputs, decoded page images) for every page, in the same order."""
    from ocrfleet.recognition.inputs import decode_image_bytes, render_pdf_bytes

    jobs, images = [], []
    for path in sorted((DATA / "receipts/wildreceipt").glob("*.jpeg")):
        s3.put_object(Bucket="inputs", Key=f"pages/{path.name}", Body=path.read_bytes())
        jobs.append({"ref": f"s3://inputs/pages/{path.name}"})
        images.append(decode_image_bytes(path.read_bytes(), str(path)))
    for name in ("text.pdf", "multipage.pdf"):
        data = (DATA / "pdf" / name).read_bytes()
        s3.put_object(Bucket="inputs", Key=f"pages/{name}", Body=data)
        for index, img in render_pdf_bytes(data, name):
            jobs.append({"ref": f"s3://inputs/pages/{name}", "pages": [index]})
            images.append(img)
    return jobs, images


def run_engine(ocr, images) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    texts = [list(ocr.predict(img)[0]["rec_texts"]) for img in images]
    return len(images) / (time.perf_counter() - t0), texts


def run_fleet(producer, jobs) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    handles = [producer.submit([job], mode="page") for job in jobs]
    records = [h.result(timeout=600) for h in handles]
    rate = len(jobs) / (time.perf_counter() - t0)
    bad = [r for r in records if r["status"] != "succeeded"]
    if bad:
        raise RuntimeError(f"failed page jobs: {bad[:2]}")
    texts = [[e["rec_text"] for e in h.fetch_result()["items"]] for h in handles]
    return rate, texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--det", default="PP-OCRv5_mobile_det")
    ap.add_argument("--rec", default="PP-OCRv5_mobile_rec")
    ap.add_argument("--worker", default="--pool prefork -c 2")
    ap.add_argument("--cpu-threads", type=int, default=1, help="the worker's threads per model")
    ap.add_argument("--engine-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-page-pixels", type=int, default=None,
                    help="the workers' max_page_pixels (smaller: less detector memory, other boxes than the engine's)")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a worker setting, e.g. page_det_max_side=1280 or page_preset=fast (repeatable)")
    args = ap.parse_args()

    from ocrfleet import PaddleOCR
    from ocrfleet.config.settings import to_env
    from ocrfleet.producer import Producer

    s3, redis = WeedS3().start(), RedisServer().start()
    worker = None
    try:
        base = isolated_settings(redis.url, s3, "bench-pages", "bench-secret", args.rec,
                                 default_det_model=args.det, worker_models=[args.rec, args.det],
                                 cpu_threads=args.cpu_threads, task_events=False,
                                 **({} if args.max_page_pixels is None else {"max_page_pixels": args.max_page_pixels}),
                                 **settings_args(args.setting))
        producer = Producer(base)
        jobs, images = upload_pages(s3.client())
        wargs = shlex.split(args.worker)
        conc = int(wargs[wargs.index("-c") + 1]) if "-c" in wargs else 1
        extra = [a for i, a in enumerate(wargs) if a != "-c" and (i == 0 or wargs[i - 1] != "-c")]
        worker = Worker(to_env(base), name=f"pages{uuid.uuid4().hex[:6]}", concurrency=conc,
                        models=f"{args.rec},{args.det}", extra=extra).start(producer.app, timeout=180)
        time.sleep(3)  # the children load + warm both models at start
        rss_start = {pid: vm_hwm_mb(pid) for pid in worker.children()}
        ocr = PaddleOCR(text_detection_model_name=args.det, text_recognition_model_name=args.rec,
                        use_textline_orientation=False, cpu_threads=args.engine_threads,
                        preset=base.page_preset or None)
        run_engine(ocr, images[:1])
        run_fleet(producer, jobs[:conc])  # warm both children's first job
        rounds = []
        for r in range(args.rounds):
            order = ["engine", "fleet"] if r % 2 == 0 else ["fleet", "engine"]
            row = {}
            for name in order:
                row[name], texts = run_engine(ocr, images) if name == "engine" else run_fleet(producer, jobs)
                row[f"{name}_texts"] = texts
            same = sum(a == b for a, b in zip(row.pop("engine_texts"), row.pop("fleet_texts")))
            row.update(ratio=row["fleet"] / row["engine"], same_pages=f"{same}/{len(jobs)}",
                       load=os.getloadavg()[0])
            rounds.append(row)
            print(f"round {r}: engine {row['engine']:.3f} pages/s  fleet {row['fleet']:.3f} pages/s  "
                  f"ratio {row['ratio']:.3f}  same text {row['same_pages']}  load {row['load']:.1f}", flush=True)
        rss_end = {pid: vm_hwm_mb(pid) for pid in worker.children()}
        out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
               "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "command": " ".join(sys.argv),
               "det": args.det, "rec": args.rec, "worker": args.worker, "cpu_threads": args.cpu_threads,
               "engine_threads": args.engine_threads, "max_page_pixels": base.max_page_pixels,
               "settings": args.setting, "pages": len(jobs), "rounds": rounds,
               "median_ratio": statistics.median(r["ratio"] for r in rounds),
               "worker_rss_peak_mb_after_start": rss_start, "worker_rss_peak_mb_after_jobs": rss_end}
        print(f"median ratio {out['median_ratio']:.3f}; worker VmHWM after start "
              f"{max(rss_start.values()):.0f} MB, after the page jobs {max(rss_end.values()):.0f} MB")
        dest = REPO / "bench" / "results"
        dest.mkdir(exist_ok=True)
        (dest / f"fleet-pages-{int(time.time())}.json").write_text(json.dumps(out, indent=1))
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        s3.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
