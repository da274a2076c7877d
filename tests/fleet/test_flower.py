"""Flower against the worker app and the test broker: it sees the running worker (inspect)
and the ocrfleet task (events; the fleet sends them: worker_send_task_events, -E)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from ocrfleet.config.settings import to_env

from ocrfleet.testing.servers import REPO, free_port, stop

pytestmark = pytest.mark.timeout(60)
assert importlib.util.find_spec("flower"), "the `test` extra installs flower (==2.2.0)"


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def _until(fn, timeout: float, what: str):
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            value = fn()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen after {timeout} s (last error: {last})")


@pytest.fixture()
def flower(settings, worker):
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="fleet-flower-", suffix=".log", delete=False)
    env = dict(os.environ, **to_env(settings), FLOWER_UNAUTHENTICATED_API="true")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ocrfleet.workers.app", "flower",
                             f"--port={port}", "--address=127.0.0.1"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: proc.poll() is None and _get(f"{url}/healthcheck") == (200, "OK"), 20,
               "flower /healthcheck")
        yield url
    finally:
        stop(proc)
        log.close()
        if proc.returncode not in (0, -15, None):
            print(open(log.name).read()[-3000:])
        os.unlink(log.name)


def test_flower_sees_worker_and_task(flower, producer, worker, inputs):
    workers = _until(lambda: {k: v for k, v in json.loads(_get(f"{flower}/api/workers?refresh=1")[1]).items()
                              if k.startswith(worker.name + "@")}, 15, "the worker in /api/workers")
    (info,) = workers.values()
    assert "ocrfleet.recognize" in info.get("registered", []), info.get("registered")

    job = producer.submit([inputs["lines"][1]])
    assert job.result(timeout=30)["status"] == "succeeded"
    # events arrive shortly after the backend record: wait for task-succeeded
    task = _until(lambda: (t := json.loads(_get(f"{flower}/api/task/info/{job.id}")[1]))["state"] == "SUCCESS"
                  and t, 15, "the succeeded task in /api/task/info")
    assert task["name"] == "ocrfleet.recognize"
    assert task["worker"].startswith(worker.name + "@")
    metrics = _get(f"{flower}/metrics")[1]
    assert 'flower_events_total{task="ocrfleet.recognize",type="task-succeeded"' in metrics

    # a failed job is a failure in Flower too (Celery's FAILURE state), its error code shown
    bad = producer.submit("s3://inputs/flower/missing.png")
    assert bad.result(timeout=30)["error"]["code"] == "NOT_FOUND"
    task = _until(lambda: (t := json.loads(_get(f"{flower}/api/task/info/{bad.id}")[1]))["state"] == "FAILURE"
                  and t, 15, "the failed task in /api/task/info")
    assert "NOT_FOUND" in task["exception"] and "missing.png" in task["exception"], task["exception"]
