"""A worker child SIGKILLed mid-job: the job is requeued (acks_late + reject_on_worker_lost),
runs again and leaves exactly one result object; a job that keeps killing workers is
dead-lettered by the delivery counter."""
from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from ocrfleet.tasks import state
from ocrfleet.jobs import contract as keys

pytestmark = pytest.mark.timeout(150)


def _wait_running(r, settings, job_id, not_pid=None, timeout=30.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        where = r.get(keys.running_key(settings, job_id))
        if where:
            pid = int(where.decode().rsplit(":", 1)[1])
            if pid != not_pid:
                return pid
        time.sleep(0.005)
    raise TimeoutError("job did not start")


def _result_objects(s3_server, settings, job_id) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=settings.results_bucket,
                                                 Prefix=f"{settings.results_prefix}/{job_id}")
    return [o["Key"] for o in listing.get("Contents", [])]


def _long_job(inputs) -> list[str]:
    lines = [r for r in inputs["lines"] if "wildreceipt_lines" in r]
    return (lines * 6)[:480]


def test_sigkill_child_mid_job_is_redelivered_once(producer, settings, worker, inputs, s3_server):
    r = redis.Redis.from_url(settings.redis)
    job = producer.submit(_long_job(inputs), job_id=f"kill-{time.time_ns()}")
    pid = _wait_running(r, settings, job.id)
    assert pid in worker.children()
    os.kill(pid, signal.SIGKILL)
    t_kill = time.time()
    record = job.result(timeout=90)
    assert record["status"] == "succeeded", (record, worker.tail())
    assert record["summary"]["lines"] == 480
    assert int(r.get(keys.deliveries_key(settings, job.id))) == 2
    assert _result_objects(s3_server, settings, job.id) == [keys.result_key(settings, job.id)]
    print(f"redelivered and finished {time.time() - t_kill:.1f} s after the kill")


def test_poison_job_is_dead_lettered(producer, settings, worker, inputs, s3_server):
    r = redis.Redis.from_url(settings.redis)
    job = producer.submit(_long_job(inputs), job_id=f"poison-{time.time_ns()}")
    pid = None
    for _ in range(settings.max_deliveries):
        pid = _wait_running(r, settings, job.id, not_pid=pid)
        os.kill(pid, signal.SIGKILL)
    record = job.result(timeout=90)
    assert record["status"] == "failed" and record["error"]["code"] == "INTERNAL", record
    assert "dead-lettered" in record["error"]["message"]
    assert job.id in state.dead_letters(settings, "jobs")
    assert len(_result_objects(s3_server, settings, job.id)) == 1
