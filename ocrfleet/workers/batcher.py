"""Cross-job batching inside one worker process (the ``threads`` pool).

A prefork child runs one job at a time, so a one-line job pays the whole per-job overhead
(broker, Redis, S3 get/put) with the model idle, and always runs the model at batch size 1.
In the threads pool several jobs run at once in one process; their I/O overlaps, and their
line images meet here: one inference thread per model collects the lines submitted by the
running jobs, runs the recogniser once for all of them and hands each job its own results.

When the thread is free and lines are waiting it runs them at once if

* ``max_lines`` lines are waiting (setting ``batcher_max_lines``), or
* every job that announced itself (``job()``) has submitted its lines: nobody else can
  join this batch, so waiting would only add latency, or
* the oldest waiting request has waited ``max_wait_ms``.

While the model runs, new requests queue up and go together into the next call: under load
batches fill without any waiting. A job's own ``batch_size`` (spec) is honoured as a cap: a
model call never holds more lines than the smallest ``batch_size`` of the jobs in it (nor more
than ``max_lines``). The engine's ``pack="exact"`` planning only ever puts
lines of the same padded width in one model call, so every line gets the same text and
score as when its job runs alone (tests/fleet/test_batcher.py checks this).

A request whose batch fails is retried alone, so one bad request cannot fail its
neighbours; an exception is delivered to the callers it belongs to and the thread goes on.
Callers wait with a deadline (``JobContext``): the threads pool does not enforce Celery's
time limits, so the task raises ``SoftTimeLimitExceeded`` itself when a job runs too long.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded

from ocrfleet.recognition.engine import check_batch_size, check_line
from ocrfleet.workers import metrics


class _Request:
    __slots__ = ("images", "future", "arrived", "owner", "batch_size")

    def __init__(self, images, owner, batch_size: int | None = None):
        self.images = images
        self.batch_size = batch_size
        self.future: Future = Future()
        self.arrived = time.monotonic()
        self.owner = owner


class Batcher:
    """One inference thread for one recogniser. ``recognize()`` has the recogniser's signature."""

    def __init__(self, recognizer, max_lines: int, max_wait_ms: float = 20.0,
                 pack: str = "exact", name: str = "model"):
        self.recognizer = recognizer
        self.max_lines = check_batch_size(max_lines, "batcher_max_lines")
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.pack = pack
        self.name = name
        self._queue: deque[_Request] = deque()
        self._queued_lines = 0
        self._expected: dict[object, int] = {}  # job token -> announced, not yet submitted
        self._cond = threading.Condition()
        self._stopped = False
        self.stats = {"calls": 0, "requests": 0, "lines": 0, "max_lines": 0, "failed_calls": 0}
        self._thread = threading.Thread(target=self._loop, name=f"ocrfleet-batcher-{name}", daemon=True)
        self._thread.start()

    # -- callers ---------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.recognizer.backend_name

    @contextmanager
    def job(self):
        """Announce a job that will submit lines: the batcher won't wait for lines that are
        not coming (a batch runs as soon as every announced job has submitted)."""
        token = object()
        with self._cond:
            self._expected[token] = 1
        try:
            yield token
        finally:
            with self._cond:
                if self._expected.pop(token, None):
                    self._cond.notify_all()

    def submit(self, images, token=None, batch_size: int | None = None, checked: bool = False) -> Future:
        """Queue line images; the future resolves to [(text, score)] in order. ``batch_size``: the
        caller's cap on lines per model call. Invalid images raise InvalidInputError here, in the
        caller, and never reach a shared batch (``checked``: the caller ran ``check_line``)."""
        prepared = list(images) if checked else [check_line(im) for im in images]
        req = _Request(prepared, token, batch_size)
        with self._cond:
            if self._stopped:
                raise RuntimeError(f"batcher {self.name} is stopped")
            if token is not None:
                self._expected.pop(token, None)
            if prepared:
                self._queue.append(req)
                self._queued_lines += len(prepared)
                self._cond.notify_all()
        if not prepared:
            req.future.set_result([])
        return req.future

    def recognize(self, images, batch_size: int | None = None, pack: str | None = None,
                  token=None, deadline: float | None = None, checked: bool = False) -> list[tuple[str, float]]:
        """Like ``Recognizer.recognize``: ``batch_size`` caps the model calls these lines are in;
        ``pack`` is the batcher's (exact: batching never changes results). ``deadline`` is a
        ``time.monotonic()`` value."""
        future = self.submit(images, token, batch_size, checked)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()  # skipped if the thread has not taken it yet
            raise SoftTimeLimitExceeded("job time limit reached while waiting for recognition") from None

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the inference thread --------------------------------------------------------------
    def _ready(self, now: float) -> float | None:
        """0 if a batch should run now, else seconds to wait (None: wait for a notify)."""
        if not self._queue:
            return None
        if self._queued_lines >= self.max_lines or not self._expected:
            return 0.0
        return max(0.0, self._queue[0].arrived + self.max_wait - now)

    def _take(self) -> list[_Request]:
        taken, lines = [], 0
        while self._queue:
            req = self._queue[0]
            if taken and lines + len(req.images) > self.max_lines:
                break
            self._queue.popleft()
            self._queued_lines -= len(req.images)
            if req.future.set_running_or_notify_cancel():
                taken.append(req)
                lines += len(req.images)
        return taken

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        self._fail_queued()
                        return
                    wait = self._ready(time.monotonic())
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                batch = self._take()
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        images = [im for req in batch for im in req.images]
        size = min([self.max_lines] + [req.batch_size for req in batch if req.batch_size])
        try:
            texts = self.recognizer.recognize(images, batch_size=size, pack=self.pack, checked=True)
        except BaseException as exc:  # noqa: BLE001 - delivered to the callers, the thread goes on
            self.stats["failed_calls"] += 1
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for req in batch:  # find whose lines fail: each request alone
                try:
                    req.future.set_result(self.recognizer.recognize(
                        req.images, batch_size=min(self.max_lines, req.batch_size or self.max_lines), pack=self.pack,
                        checked=True))
                except BaseException as one:  # noqa: BLE001
                    req.future.set_exception(one)
            return
        self.stats["calls"] += 1
        self.stats["requests"] += len(batch)
        self.stats["lines"] += len(images)
        self.stats["max_lines"] = max(self.stats["max_lines"], len(images))
        metrics.BATCH_JOBS.labels(self.name).observe(len(batch))
        metrics.BATCH_LINES.labels(self.name).observe(len(images))
        start = 0
        for req in batch:
            n = len(req.images)
            req.future.set_result(texts[start:start + n])
            start += n

    def _fail_queued(self) -> None:
        while self._queue:
            req = self._queue.popleft()
            if req.future.set_running_or_notify_cancel():
                req.future.set_exception(RuntimeError(f"batcher {self.name} stopped"))
        self._queued_lines = 0


# -- per-process registry (threads pool) ---------------------------------------------------
_batchers: dict[str, Batcher] = {}
_lock = threading.Lock()


def get_batcher(settings, name: str, recognizer) -> Batcher:
    """The batcher of model ``name`` (replaced if the model cache reloaded the recogniser)."""
    with _lock:
        b = _batchers.get(name)
        if b is None or b.recognizer is not recognizer:
            if b is not None:
                b.stop(0)
            b = _batchers[name] = Batcher(recognizer, max_lines=settings.batcher_max_lines,
                                          max_wait_ms=settings.batch_max_wait_ms, name=name)
        return b


class JobContext:
    """What a task holds while its job runs: a deadline and, in the threads pool, a
    recogniser view that submits to the model's batcher."""

    def __init__(self, settings, recognizer, batched: bool, time_limit: float | None):
        self.deadline = time.monotonic() + time_limit if time_limit else None
        self.time_limit = time_limit
        self.batcher = get_batcher(settings, recognizer_name(recognizer), recognizer) if batched else None
        self.recognizer = recognizer
        self.token = None

    def check(self) -> None:
        """Raise SoftTimeLimitExceeded once the job's deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise SoftTimeLimitExceeded(f"job exceeded the {self.time_limit} s time limit")

    @property
    def backend_name(self) -> str:
        return self.recognizer.backend_name

    def recognize(self, images, batch_size: int, pack: str = "exact", checked: bool = False):
        """The job's lines, at most ``batch_size`` (the spec's) per model call, batched with
        other jobs' lines in the threads pool."""
        self.check()
        if self.batcher is None:
            return self.recognizer.recognize(images, batch_size=batch_size, pack=pack, checked=checked)
        return self.batcher.recognize(images, batch_size, token=self.token, deadline=self.deadline, checked=checked)


def recognizer_name(recognizer) -> str:
    """The batcher's key: the model name, plus its directory for custom models (two jobs' models
    of the same name from different directories are different models)."""
    files = getattr(recognizer, "files", None)
    name = getattr(files, "name", None) or f"rec-{id(recognizer):x}"
    source = str(getattr(files, "source", ""))
    return f"{name}@{source[len('model_dir:'):]}" if source.startswith("model_dir:") else name


@contextmanager
def job_recognizer(settings, recognizer):
    """``with job_recognizer(s, rec) as r: run_job(..., r, cancelled=lambda: r.check() or ...)``.
    In the threads pool (``settings.worker_pool == "threads"``) ``r`` batches across jobs and
    enforces ``task_soft_time_limit`` itself; in prefork it is the recogniser (Celery enforces
    the limits)."""
    threads = settings.worker_pool == "threads"
    ctx = JobContext(settings, recognizer, batched=threads and settings.batch_max_wait_ms >= 0,
                     time_limit=settings.task_soft_time_limit if threads else None)
    if ctx.batcher is None:
        yield ctx
        return
    with ctx.batcher.job() as token:
        ctx.token = token
        yield ctx
