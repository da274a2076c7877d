"""Load: a burst of 2,000 small jobs (none lost, none duplicated) and a 10,000-recognition soak
(worker RSS stays flat)."""
from __future__ import annotations

import os
import threading
import time

import pytest

from ocrfleet.producer import Producer

from .helpers import (REPORT, backend_records, deliveries, line_png, make_settings, result_objects, rss_kib,
                      slope, wait_records)

# an ordinary run: 1,000 burst jobs and 5,000 soak recognitions; the explicit report command
# (python -m tests.reliability.report) runs the full 2,000 and 10,000
BURST = int(os.environ.get("OCRFLEET_BURST_JOBS", 1000))
SOAK_JOBS, SOAK_LINES = int(os.environ.get("OCRFLEET_SOAK_JOBS", 100)), 50


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_burst_all_completed_none_lost_none_duplicated(weed, redis_aof, fleet, line_ref):
    settings = make_settings(redis_aof.url, weed)
    producer = Producer(settings)
    fleet.worker(settings, producer, concurrency=2)
    t0 = time.time()
    specs = [producer.build_spec(line_ref, job_id=f"burst-{i:05d}") for i in range(BURST)]
    jobs = [producer.submit_spec(spec) for spec in specs]
    t_enq = time.time() - t0
    ids = [j.id for j in jobs]
    assert len(set(ids)) == BURST and all(j.created for j in jobs)
    records = wait_records(settings, ids, timeout=240, poll=1.0)
    elapsed = time.time() - t0
    statuses = {}
    for rec in records.values():
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
    objects = result_objects(weed.client(), settings)
    counts = deliveries(settings, ids)
    lost = BURST - len(records)
    executed_twice = sum(1 for n in counts.values() if n > 1)
    extra_objects = len(objects) - len({k for k in objects})
    expected_keys = {f"{settings.results_prefix}/{i}.json" for i in ids}
    REPORT["load"].append({
        "scenario": f"burst: {BURST} jobs (1 line each, {settings.default_model}) enqueued at once, "
                    "1 worker -c 2",
        "jobs": BURST, "enqueue_s": round(t_enq, 1), "total_s": round(elapsed, 1),
        "jobs_per_s": round(BURST / elapsed, 1), "lost": lost,
        "duplicates": executed_twice + extra_objects + len(set(objects) - expected_keys),
        "statuses": statuses, "result_objects": len(objects)})
    assert lost == 0, f"{lost} jobs without a final record"
    assert statuses == {"succeeded": BURST}, statuses
    assert set(objects) == expected_keys
    assert executed_twice == 0 and set(counts.values()) == {1}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_worker_rss_stays_flat(weed, redis_aof, fleet):
    """SOAK_JOBS jobs x 50 regions of one page image (5,000 recognitions; 10,000 in the report) in ONE worker child
    (-c 1), all through the real task (fetch from S3, crop, recognise, write the result). The
    child's RSS is sampled as jobs finish; the slope after a warm-up must stay small."""
    import cv2
    import numpy as np

    lines = [cv2.imdecode(np.frombuffer(line_png(f"LINE {i:02d} TOTAL {i * 7}.50"), np.uint8), cv2.IMREAD_COLOR)
             for i in range(SOAK_LINES)]
    page = np.vstack(lines)
    weed.client().put_object(Bucket="inputs", Key="rel/page50.png", Body=cv2.imencode(".png", page)[1].tobytes())
    regions = [[0, 32 * i, 200, 32 * (i + 1)] for i in range(SOAK_LINES)]
    settings = make_settings(redis_aof.url, weed)
    producer = Producer(settings)
    w = fleet.worker(settings, producer, concurrency=1)
    (child,) = w.children()
    samples: list[tuple[int, int]] = []  # (recognitions finished, RSS KiB)
    t0 = time.time()
    ids = [producer.submit("s3://inputs/rel/page50.png", regions=regions, job_id=f"soak-{i:04d}").id
           for i in range(SOAK_JOBS)]
    deadline = time.time() + 240
    done: dict = {}
    while len(done) < SOAK_JOBS and time.time() < deadline:
        done = backend_records(settings, ids)
        samples.append((sum((r.get("summary") or {}).get("lines", 0) for r in done.values()), rss_kib(child)))
        time.sleep(0.5)
    elapsed = time.time() - t0
    assert w.children() == [child], "the child was replaced during the soak"
    recognitions = sum((r.get("summary") or {}).get("lines", 0) for r in done.values())
    assert len(done) == SOAK_JOBS and all(r["status"] == "succeeded" for r in done.values())
    assert recognitions == SOAK_JOBS * SOAK_LINES
    warm = [(n, kib) for n, kib in samples if n >= recognitions * 0.1]
    mib_per_1000 = slope([n for n, _ in warm], [kib / 1024 for _, kib in warm]) * 1000
    first, last = warm[0][1] / 1024, warm[-1][1] / 1024
    REPORT["load"].append({
        "scenario": f"soak: {SOAK_JOBS} jobs x {SOAK_LINES} regions through the real task in one worker "
                    "child (-c 1)",
        "jobs": SOAK_JOBS, "total_s": round(elapsed, 1), "lost": SOAK_JOBS - len(done), "duplicates": 0,
        "recognitions": recognitions, "lines_per_s": round(recognitions / elapsed),
        "rss_mib_after_warmup": f"{first:.1f} -> {last:.1f}",
        "rss_slope_mib_per_1000_recognitions": round(mib_per_1000, 3)})
    # generous bound: 2 MiB per 1000 lines would be +20 MiB over the soak
    assert mib_per_1000 < 2.0, f"RSS grows {mib_per_1000:.2f} MiB per 1000 recognitions ({first:.0f} -> {last:.0f})"
