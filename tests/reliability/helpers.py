"""Shared helpers of the reliability suite: settings for an isolated fleet on given servers,
bulk waiting on the result backend, S3 result listings, the report collected for
docs/reliability.md."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from ocrfleet.testing.servers import isolated_settings

from ocrfleet.jobs.contract import record_of
from ocrfleet.jobs import contract as keys

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "real"
MODEL = "PP-OCRv6_tiny_rec"
SECRET = "rel-webhook-secret-" + uuid.uuid4().hex[:12]

# filled by the tests, written to docs/reliability.md at the end of the session (conftest.py)
REPORT: dict = {"faults": [], "bad_inputs": [], "load": [], "security": [], "notes": [], "probes": [],
                "figures": {}}


def make_settings(redis_url: str, s3, **overrides):
    """Settings for a fleet isolated by key/queue/result prefixes on shared servers."""
    values = dict(
        webhook_timeout=2.0, storage_retries=8, storage_backoff_base=1.0, visibility_timeout=20,
        unacked_restore_interval=1, task_time_limit=15, task_soft_time_limit=12,
        max_input_bytes=2 * 1024 * 1024, cpu_threads=1)
    values.update(overrides)
    return isolated_settings(redis_url, s3, "rel", SECRET, MODEL, **values)


def line_png(text: str = "TOTAL 42.00", width: int = 200) -> bytes:
    img = np.full((32, width, 3), 255, np.uint8)
    cv2.putText(img, text, (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
    return cv2.imencode(".png", img)[1].tobytes()


def backend_records(settings, job_ids, redis_client=None) -> dict[str, dict]:
    """The finished result-backend records of ``job_ids`` (missing ones are left out)."""
    import redis

    r = redis_client or redis.Redis.from_url(settings.result_backend)
    out = {}
    ids = list(job_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for job_id, raw in zip(chunk, r.mget([f"celery-task-meta-{j}" for j in chunk])):
            if raw is None:
                continue
            meta = json.loads(raw)
            if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):  # a failed job: FAILURE + its record
                out[job_id] = record_of(meta["status"], meta["result"]) or {
                    "status": "failed", "error": {"code": "TASK_FAILURE", "message": str(meta["result"])}}
    return out


def wait_records(settings, job_ids, timeout: float, poll: float = 0.5) -> dict[str, dict]:
    """Poll the backend until every job has a final record or the deadline passes."""
    import redis

    r = redis.Redis.from_url(settings.result_backend)
    deadline = time.time() + timeout
    while True:
        try:
            done = backend_records(settings, job_ids, r)
        except redis.ConnectionError:
            done = {}
        if len(done) == len(set(job_ids)) or time.time() > deadline:
            return done
        time.sleep(poll)


def result_objects(s3_client, settings) -> dict[str, dict]:
    """Every result object under the settings' prefix: key -> parsed JSON."""
    out = {}
    token = None
    while True:
        kw = dict(Bucket=settings.results_bucket, Prefix=settings.results_prefix + "/")
        if token:
            kw["ContinuationToken"] = token
        page = s3_client.list_objects_v2(**kw)
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def read_objects(s3_client, settings, keys) -> dict[str, dict]:
    return {k: json.loads(s3_client.get_object(Bucket=settings.results_bucket, Key=k)["Body"].read())
            for k in keys}


def deliveries(settings, job_ids) -> dict[str, int]:
    import redis

    r = redis.Redis.from_url(settings.redis)
    ids = list(job_ids)
    out = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for j, v in zip(chunk, r.mget([keys.deliveries_key(settings, j) for j in chunk])):
            out[j] = int(v) if v is not None else 0
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(pid)


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a process so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError(pid)


def slope(xs, ys) -> float:
    """Least-squares slope of ys over xs."""
    x = np.asarray(xs, float)
    y = np.asarray(ys, float)
    return float(np.polyfit(x, y, 1)[0])
