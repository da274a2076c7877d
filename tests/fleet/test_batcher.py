"""The cross-job batcher (ocrfleet/workers/batcher.py) with the real model, and a real
threads-pool worker running one-line jobs concurrently."""
from __future__ import annotations

import time
import urllib.request
import uuid

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from ocrfleet.config.settings import load_settings, to_env
from ocrfleet.errors import InvalidInputError
from ocrfleet.recognition.inputs import decode_image_bytes
from ocrfleet.workers.batcher import Batcher, job_recognizer

from .conftest import DATA, MODEL
from ocrfleet.testing.batching import recognize_concurrently
from ocrfleet.testing.servers import Worker, free_port


def _lines() -> list[np.ndarray]:
    out = []
    for tsv in sorted(DATA.glob("rec/*/labels.tsv")):
        for line in tsv.read_text().splitlines():
            path = tsv.parent / line.split("\t", 1)[0]
            out.append(decode_image_bytes(path.read_bytes(), str(path)))  # as the worker decodes
    return out


@pytest.fixture(scope="module")
def lines():
    return _lines()


@pytest.fixture(scope="module")
def rec():
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.recognition.sources import resolve

    return Recognizer(resolve(MODEL), EngineOptions(cpu_threads=1))


@pytest.fixture(scope="module")
def alone(rec, lines):
    """Each line recognised on its own (batch size 1): what an unbatched job gets."""
    return [rec.recognize([im], batch_size=1)[0] for im in lines]


def _same(got, want):
    assert [t for t, _ in got] == [t for t, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


class Flaky:
    """The real recogniser, failing every call that contains a 7-pixel-wide image."""

    def __init__(self, rec):
        self.rec = rec
        self.calls = []
        self.sizes = []  # the batch_size of each model call

    backend_name = "flaky"

    def recognize(self, images, batch_size=8, pack="exact", checked=False):
        self.calls.append(len(images))
        self.sizes.append(batch_size)
        if any(im.shape[1] == 7 for im in images):
            raise RuntimeError("boom")
        return self.rec.recognize(images, batch_size=batch_size, pack=pack, checked=checked)


def test_concurrent_submitters_get_their_own_results(rec, lines, alone):
    b = Batcher(rec, max_lines=16, max_wait_ms=50, name="t")
    chunks = [list(range(i, min(i + n, len(lines)))) for i, n in
              zip(range(0, len(lines), 5), [1, 2, 5, 1, 3, 1, 4, 5, 1, 2] * 10)]
    results, errors = recognize_concurrently(b, lines, chunks)
    b.stop()
    assert not errors
    for k, idx in enumerate(chunks):
        _same(results[k], [alone[i] for i in idx])
    assert b.stats["requests"] == len(chunks)
    assert b.stats["calls"] < len(chunks) and b.stats["max_lines"] > 1  # jobs shared model calls
    assert b.stats["max_lines"] <= 16


def test_max_wait_is_honoured(rec, lines, alone):
    b = Batcher(rec, max_lines=64, max_wait_ms=300, name="t")
    try:
        with b.job():  # an announced job that is still "fetching": the batcher may wait for it
            with b.job() as token:
                t0 = time.monotonic()
                got = b.recognize([lines[0]], token=token)
                waited = time.monotonic() - t0
        _same(got, [alone[0]])
        assert 0.29 <= waited < 0.3 + 2.0, waited
        # nobody else announced: no waiting at all
        with b.job() as token:
            t0 = time.monotonic()
            b.recognize([lines[1]], token=token)
            assert time.monotonic() - t0 < 0.25
        # a full batch runs at once even while others are expected
        small = Batcher(rec, max_lines=2, max_wait_ms=5000, name="t2")
        with small.job(), small.job() as token:
            t0 = time.monotonic()
            _same(small.recognize(lines[2:4], token=token), alone[2:4])
            assert time.monotonic() - t0 < 2.5
        small.stop()
    finally:
        b.stop()


def test_exception_goes_to_its_callers_and_the_thread_keeps_serving(rec, lines, alone):
    flaky = Flaky(rec)
    b = Batcher(flaky, max_lines=16, max_wait_ms=200, name="t")
    bad = np.full((32, 7, 3), 255, np.uint8)
    try:
        with b.job() as t1, b.job() as t2, b.job() as t3:
            f_good = b.submit([lines[0]], t1)
            f_bad = b.submit([bad, lines[1]], t2)
            f_good2 = b.submit(lines[2:4], t3)
            _same(f_good.result(30), [alone[0]])
            _same(f_good2.result(30), alone[2:4])
            with pytest.raises(RuntimeError, match="boom"):
                f_bad.result(30)
        assert flaky.calls[0] == 5  # one shared call, then each request alone
        # the thread still serves
        _same(b.recognize(lines[4:6]), alone[4:6])
        # a lone failing request gets the exception directly
        with pytest.raises(RuntimeError, match="boom"):
            b.recognize([bad])
        _same(b.recognize([lines[6]]), [alone[6]])
        # invalid images fail in the caller, before they reach a shared batch
        with pytest.raises(InvalidInputError):
            b.submit([np.zeros((0, 5, 3), np.uint8)])
        assert b.recognize([]) == []
    finally:
        b.stop()


def test_a_jobs_batch_size_caps_the_shared_model_calls(rec, lines, alone):
    """Threads pool: a job's own spec batch_size is honoured, not ignored: the shared call its
    lines are in runs at most that many lines per model call (the text is the same: exact packing)."""
    spy = Flaky(rec)  # no 7-pixel-wide image here: the real recogniser, with its calls recorded
    b = Batcher(spy, max_lines=16, max_wait_ms=2000, name="t")
    try:
        with b.job() as t1, b.job() as t2:
            f_small = b.submit(lines[:3], t1, batch_size=2)
            f_big = b.submit(lines[3:8], t2, batch_size=16)
            _same(f_small.result(30), alone[:3])
            _same(f_big.result(30), alone[3:8])
        assert spy.calls == [8] and spy.sizes == [2], (spy.calls, spy.sizes)
        assert b.recognize(lines[8:10], batch_size=4) and spy.sizes[-1] == 4
        assert b.recognize(lines[10:11]) and spy.sizes[-1] == 16  # no cap given: max_lines
    finally:
        b.stop()


def test_deadline_and_job_context(rec, lines, alone):
    settings = load_settings(env={})
    b = Batcher(rec, max_lines=16, max_wait_ms=1000, name="t")
    try:
        with b.job(), b.job() as token:  # the other job never submits: the line would wait 1 s
            with pytest.raises(SoftTimeLimitExceeded):
                b.recognize([lines[0]], token=token, deadline=time.monotonic() + 0.1)
    finally:
        b.stop()
    threads = settings.replace(worker_pool="threads", task_soft_time_limit=0.2, batch_max_wait_ms=5)
    with job_recognizer(threads, rec) as r:
        assert r.batcher is not None and r.backend_name == rec.backend_name
        _same(r.recognize(lines[:3], 8), alone[:3])
        time.sleep(0.25)
        with pytest.raises(SoftTimeLimitExceeded):
            r.check()
    with job_recognizer(settings, rec) as r:  # prefork: the recogniser itself, Celery's limits
        assert r.batcher is None
        r.check()
        _same(r.recognize(lines[:2], batch_size=1), alone[:2])


def test_threads_worker_batches_one_line_jobs(settings, producer, inputs, alone):
    """A real `ocrfleet worker --pool threads` on its own queues: 1-line jobs in flight together
    share model calls, and each job gets exactly the text of its line recognised alone."""
    from ocrfleet.producer import Producer

    run = uuid.uuid4().hex[:6]
    s = settings.replace(queue_prefix=f"b{run}.", key_prefix=f"batch-{run}")
    p = Producer(s)
    port = free_port()
    w = Worker(to_env(s), name=f"wb{run}", concurrency=6,
               extra=["--pool", "threads", "--batch-wait-ms", "20", "--metrics-port", str(port)]).start(p.app)
    try:
        refs = inputs["lines"]
        ref_lines = _lines()  # same order as inputs["lines"] (both walk labels.tsv)
        assert len(ref_lines) == len(refs)
        t0 = time.time()
        jobs = [p.submit([ref], webhook_url=None) for ref in refs]
        records = [j.result(timeout=120) for j in jobs]
        elapsed = time.time() - t0
        assert all(r["status"] == "succeeded" for r in records), records[:3]
        for j, want in zip(jobs, alone):
            full = j.fetch_result()
            assert full["worker"].split(":")[-1] == str(w.proc.pid)  # one process: no children
            assert full["items"][0]["rec_text"] == want[0]
            assert abs(full["items"][0]["rec_score"] - want[1]) < 1e-4
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        count = _metric(body, "ocrfleet_batch_jobs_count")
        total = _metric(body, "ocrfleet_batch_jobs_sum")
        assert total == len(refs) and count < total, body  # fewer model calls than jobs
        print(f"{len(refs)} one-line jobs in {elapsed:.2f} s, {count:.0f} model calls")
    finally:
        w.stop()


def _metric(body: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{"))
