"""Structured JSON logs with job ids and timings, no secrets; Prometheus metrics per worker."""
from __future__ import annotations

import json
import urllib.request

import pytest

from .conftest import SECRET

pytestmark = pytest.mark.timeout(60)


def test_json_logs_carry_job_id_and_no_secrets(producer, settings, worker, inputs):
    job = producer.submit([inputs["lines"][5]])
    assert job.result(timeout=60)["status"] == "succeeded"
    text = worker.tail(10**7)
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    done = [e for e in events if e.get("event") == "job.finished" and e.get("job_id") == job.id]
    assert done and done[0]["model"] == "PP-OCRv6_tiny_rec" and "recognize_s" in done[0]["timings"]
    assert any(e.get("event") == "model.loaded" and e.get("load_s") is not None for e in events)
    assert SECRET not in text and settings.s3_secret_key not in text


def test_metrics_endpoint(producer, worker, inputs):
    assert producer.submit([inputs["lines"][6]]).result(timeout=60)["status"] == "succeeded"
    port = worker.args[worker.args.index("--metrics-port") + 1]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'ocrfleet_jobs_total{code="",model="PP-OCRv6_tiny_rec",status="succeeded"}' in body
    assert "ocrfleet_job_seconds_bucket" in body
    assert "ocrfleet_model_load_seconds_count" in body


def test_model_loaded_once_per_process(producer, worker, inputs):
    """A worker process loads its model once (after fork); later jobs pay no load."""
    jobs = [producer.submit([inputs["lines"][i % len(inputs["lines"])]]) for i in range(6)]
    assert all(j.result(timeout=60)["status"] == "succeeded" for j in jobs)
    loads: dict[tuple, int] = {}
    for line in worker.tail(10**7).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "model.loaded":
            key = (event.get("pid"), event.get("model"))
            loads[key] = loads.get(key, 0) + 1
    assert loads and all(n == 1 for n in loads.values()), loads
