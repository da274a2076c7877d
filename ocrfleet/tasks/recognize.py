"""The recognition task: one job spec in, one result object in S3, a small record in the
result backend, and a webhook. Bad input fails the job (no retry); storage hiccups retry."""
from __future__ import annotations

import os
import socket
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ocrfleet.config.settings import Settings
from ocrfleet.errors import OcrFleetError
from ocrfleet.redaction import redact_obj
from ocrfleet.retry import backoff
from ocrfleet.jobs import model_dirs
from ocrfleet.jobs import spec as jobspec
from ocrfleet.storage import results
from ocrfleet.storage.s3 import TransientStorageError
from ocrfleet.tasks import state, webhooks
from ocrfleet.jobs.contract import FINALIZE_TASK, RECOGNIZE_TASK, RESULT_SCHEMA, JobFailed, JobStatus, celery_state
from ocrfleet.tasks.pipeline import JobCancelled, run_job


def _error(code: str, message: str) -> dict:
    return {"code": code, "message": message[:2000]}


def _record(result: dict) -> dict:
    """What the result backend keeps: status, summary, URI, error (credentials redacted)."""
    keys = ("job_id", "status", "result_uri", "summary", "error", "model") + (("model_dir",) if result.get("model_dir") else ())
    return redact_obj({k: result.get(k) for k in keys})


def job_summary(spec: dict, task_id: str | None = None) -> dict:
    """The top-level fields a job's ending needs (no inputs): what ``finalize`` receives."""
    out = {k: spec.get(k) for k in ("job_id", "model_name", "webhook_url", "tenant", "submitted_at", "metadata")
           if isinstance(spec, dict) and spec.get(k) is not None}
    if not jobspec.id_ok(out.get("job_id")):
        out["job_id"] = task_id
    return out


def _base(s: Settings, job_id: str, spec: dict, started: float, where: str) -> dict:
    return {"schema": RESULT_SCHEMA, "job_id": job_id, "model": spec.get("model_name", s.default_model),
            "device": s.worker_device, "worker": where, "metadata": spec.get("metadata"),
            "result_uri": results.result_uri(s, job_id), "started_at": started,
            "submitted_at": spec.get("submitted_at"), "webhook_url": spec.get("webhook_url"),
            "tenant": spec.get("tenant"),
            **({"model_dir": spec["model_dir"]} if isinstance(spec.get("model_dir"), str)
               and len(spec["model_dir"]) <= 1024 else {})}


def _model_label(s: Settings, result: dict) -> str:
    """The metrics' model label: a catalogue or ``model_dirs`` name, ``custom`` for a job's own
    ``model_dir``, else ``unknown`` (one label per hostile name would grow the metrics unbounded)."""
    from ocrfleet.recognition import catalog

    name = result.get("model")
    if result.get("model_dir"):
        return "custom"
    try:
        custom = model_dirs.named(s)
    except ValueError:
        custom = {}
    return name if isinstance(name, str) and (name in catalog.MODELS or name in custom) else "unknown"


@shared_task(bind=True, name=RECOGNIZE_TASK, acks_late=True, max_retries=None, throws=(JobFailed,))
def recognize(self, spec: dict, rejected: dict | None = None) -> dict:
    """``rejected`` is set by the worker's message screen (workers/kombu_fixes.py) when the
    original message could not be used: the job fails with that code, nothing runs.

    The backend record is the job's summary (``_record``): state SUCCESS for a succeeded (or
    cancelled while running) job; a failed job raises ``JobFailed(record)`` once its result
    object, metrics and webhook are done, so Celery stores FAILURE (Flower, ``celery
    result``/``inspect`` show a failure with its error code) and ``Job.result()`` rebuilds the record."""
    return finished(run_task(self, spec, rejected, _recognition))


def finished(record: dict) -> dict:
    """The backend record of a finished job; a failed one is raised as ``JobFailed``."""
    if record.get("status") == JobStatus.FAILED:
        raise JobFailed(record)
    return record


def _recognition(self, s: Settings, spec: dict, job_id: str, log) -> dict:
    """The recognition job's own work: its result body (items, summary, timings, backend)."""
    from ocrfleet.workers.batcher import job_recognizer
    from ocrfleet.workers.models import get_cache

    jobspec.validate(spec, s.max_spec_bytes, s.max_inputs, s.max_spec_depth)
    model_dirs.check_spec(s, spec)  # a custom model's location, before anything is read
    with job_recognizer(s, get_cache(s).get(spec.get("model_name", s.default_model),
                                            spec.get("model_dir"))) as recognizer:  # batched in the threads pool
        body = run_job(s, spec, recognizer, models=get_cache(s).get,
                       cancelled=lambda: recognizer.check() or state.is_cancelled(s, job_id))
    return {**body, "backend": recognizer.backend_name}


def run_task(self, spec, rejected: dict | None, work) -> dict:
    """One job's life in a task, whatever its kind: ids checked, a screened message failed, the
    redelivery / dead-letter / cancel checks, ``work(self, s, spec, job_id, log)`` for the result
    body, every error mapped to a code, then the result object, record, metrics and webhook."""
    from ocrfleet.workers import metrics
    from ocrfleet.workers.logs import get_logger

    s: Settings = self.app.ocrfleet_settings
    if not isinstance(spec, dict):  # a malformed message: fail it below like any invalid spec
        spec = {"inputs": spec}
    task_id = str(self.request.id)
    job_id = spec.get("job_id") if jobspec.id_ok(spec.get("job_id")) else task_id
    model = spec.get("model_name", s.default_model)
    log = get_logger(job_id=job_id, model=model, task_id=task_id)
    started = time.time()
    where = f"{socket.gethostname()}:{os.getpid()}"
    if not jobspec.id_ok(task_id) or job_id != task_id:  # never build keys from a hand-made id
        log.warning("job.bad_id", job_id=str(spec.get("job_id"))[:200])
        return _record({"job_id": task_id, "status": JobStatus.FAILED, "result_uri": None, "error": _error(
            "INVALID_INPUT", "task id and spec job_id must be the same valid id "
                             f"({jobspec.JOB_ID_PATTERN})")})
    base = _base(s, job_id, spec, started, where)
    if rejected:
        base["metadata"] = None
        return _finish(self, s, {**base, "status": JobStatus.FAILED, "finished_at": time.time(),
                                 "error": _error(str(rejected.get("code", "INVALID_INPUT")),
                                                 str(rejected.get("message", "message refused")))}, log,
                       webhook_url=spec.get("webhook_url"))
    try:
        digest = jobspec.digest(spec) if jobspec.depth(spec, s.max_spec_depth) <= s.max_spec_depth else None
    except (TypeError, ValueError):
        digest = None
    base["spec_digest"] = digest

    deliveries, cancelled = state.start(s, job_id, where)  # waits out a broker out of memory
    deliveries -= self.request.retries
    if deliveries > 1:
        log.warning("job.redelivered", delivery=deliveries)
    existed = False
    if deliveries > 1 or self.request.retries:  # a first delivery skips the HEAD: the result
        try:                                    # write is conditional (If-None-Match) anyway
            existed = results.result_exists(s, job_id)
        except TransientStorageError as exc:  # S3 down: retry with backoff, don't fail unhandled
            _retry(self, s, exc, log)
    if existed:  # a redelivery after the result was written
        try:
            stored = results.read_result(s, job_id)
        except TransientStorageError as exc:
            _retry(self, s, exc, log)
            stored = {**base, "status": JobStatus.FAILED, "result_uri": None,
                      "error": _error("STORAGE_UNAVAILABLE", f"result could not be read: {exc}")}
        log.info("job.already_done", status=stored.get("status"))
        return _finish(self, s, stored, log, written=False, digest=digest, webhook_url=spec.get("webhook_url"))
    if deliveries > s.max_deliveries:
        msg = f"job was delivered {deliveries} times (workers died running it); dead-lettered"
        state.dead_letter(s, "jobs", job_id, {"spec": spec, "deliveries": deliveries})
        return _finish(self, s, {**base, "status": JobStatus.FAILED, "error": _error("INTERNAL", msg)}, log,
                       webhook_url=spec.get("webhook_url"))
    if cancelled:
        return _finish(self, s, {**base, "status": JobStatus.CANCELLED, "error": _cancelled()}, log,
                       webhook_url=spec.get("webhook_url"))

    try:
        result = {**base, **work(self, s, spec, job_id, log), "status": JobStatus.SUCCEEDED, "error": None}
    except JobCancelled as exc:
        result = {**base, "status": JobStatus.CANCELLED, "error": _cancelled(str(exc))}
    except (OcrFleetError, jobspec.SpecError) as exc:
        log.warning("job.bad_input", code=exc.code, error=str(exc))
        result = {**base, "status": JobStatus.FAILED, "error": _error(exc.code, str(exc))}
    except TransientStorageError as exc:
        _retry(self, s, exc, log)  # raises Retry while retries are left
        result = {**base, "status": JobStatus.FAILED, "error": _error(
            "STORAGE_UNAVAILABLE", f"storage unavailable after {s.storage_retries} retries: {exc}")}
    except SoftTimeLimitExceeded:
        result = {**base, "status": JobStatus.FAILED,
                  "error": _error("TIME_LIMIT", f"job exceeded the {s.task_soft_time_limit} s time limit")}
    except Exception as exc:  # noqa: BLE001 - a bug must fail the job, not the worker
        log.exception("job.internal_error")
        result = {**base, "status": JobStatus.FAILED, "error": _error("INTERNAL", f"{type(exc).__name__}: {exc}")}

    finished = time.time()
    result["finished_at"] = finished
    result.setdefault("timings", {})
    result["timings"]["total_s"] = round(finished - started, 4)
    if spec.get("submitted_at"):
        result["timings"]["queued_s"] = round(started - spec["submitted_at"], 4)
        metrics.QUEUE_WAIT.labels(_model_label(s, base)).observe(max(0.0, started - spec["submitted_at"]))
    metrics.LATENCY.labels(_model_label(s, base)).observe(finished - started)
    try:
        return _finish(self, s, result, log, digest=digest, webhook_url=spec.get("webhook_url"))
    except TransientStorageError as exc:
        _retry(self, s, exc, log)
        log.error("job.result_not_written", error=str(exc))  # the backend record still tells
        result["result_uri"] = None
        result["error"] = _error("STORAGE_UNAVAILABLE", f"result could not be stored after "
                                                        f"{s.storage_retries} retries: {exc}")
        result["status"] = JobStatus.FAILED
        result.pop("items", None)
        return _finish(self, s, result, log, written=False, webhook_url=spec.get("webhook_url"))


@shared_task(bind=True, name=FINALIZE_TASK, acks_late=True, max_retries=None, ignore_result=True)
def finalize(self, job: dict, status: str, code: str, message: str) -> None:
    """Finish a job that never reached (or was killed inside) ``recognize``: the hard time
    limit, a cancel while queued. Sent by the worker's parent process (workers/app.py). The
    job's backend record is replaced by the usual summary record."""
    from ocrfleet.workers.logs import get_logger

    s: Settings = self.app.ocrfleet_settings
    job_id = job.get("job_id")
    if not jobspec.id_ok(job_id):
        return None
    log = get_logger(job_id=job_id, task="finalize")
    now = time.time()
    result = {**_base(s, job_id, job, now, f"{socket.gethostname()}:{os.getpid()}"), "status": status,
              "error": _error(code, message), "finished_at": now}
    try:
        record = _finish(self, s, result, log, webhook_url=job.get("webhook_url"))
    except TransientStorageError as exc:
        _retry(self, s, exc, log)
        result.update(result_uri=None, status=JobStatus.FAILED,
                      error=_error("STORAGE_UNAVAILABLE", f"result could not be stored: {exc}"))
        record = _finish(self, s, result, log, written=False, webhook_url=job.get("webhook_url"))
    state_name = celery_state(record["status"])  # FAILURE / REVOKED / SUCCESS, as recognize leaves it
    self.app.backend.store_result(job_id, record if state_name == "SUCCESS" else JobFailed(record), state_name)


def _cancelled(detail: str = "") -> dict:
    return _error("CANCELLED", f"job was cancelled{': ' + detail if detail else ''}")


def _retry(task, s: Settings, exc: Exception, log) -> None:
    """Raise celery's Retry with exponential backoff; return when no retries are left."""
    if task.request.retries >= s.storage_retries:
        log.error("job.storage_unavailable", error=str(exc))
        return
    # below the visibility timeout: a retry waiting longer would be restored and run twice
    delay = backoff(task.request.retries, s.storage_backoff_base, cap=min(60.0, s.visibility_timeout / 2))
    log.warning("job.storage_retry", error=str(exc), retry_in_s=delay)
    raise task.retry(countdown=delay, exc=exc)


def _finish(task, s: Settings, result: dict, log, written: bool = True, digest: str | None = None,
            webhook_url: str | None = None):
    """Store the result object (once), count it, enqueue its webhook; the backend record.
    A stored result for a DIFFERENT spec (a job_id reused after its claim expired) is never
    returned as this job's: the job fails with CONFLICT instead."""
    from ocrfleet.workers import metrics

    job_id = result["job_id"]
    result = redact_obj(result)
    if written:
        created, stored = results.write_result(s, job_id, result)
        if not created:
            log.info("job.result_existed")
    else:
        stored = result
    theirs = stored.get("spec_digest")
    if digest and theirs and theirs != digest:
        log.warning("job.id_reused", stored_status=stored.get("status"))
        result = {**result, "status": JobStatus.FAILED, "result_uri": None, "summary": None, "items": None,
                  "error": _error("CONFLICT", f"job_id {job_id!r} already has a result for a different "
                                              "spec (reused after its claim expired); submit with a new job_id")}
    else:
        result = stored
    err = result.get("error") or {}
    label = _model_label(s, result)
    metrics.JOBS.labels(result["status"], label, err.get("code", "")).inc()
    if result.get("summary"):
        metrics.LINES.labels(label).inc(result["summary"].get("lines", 0))
    log.info("job.finished", status=result["status"], code=err.get("code"),
             lines=(result.get("summary") or {}).get("lines"), timings=result.get("timings"))
    url = webhook_url or result.get("webhook_url")  # the spec's own URL: stored ones are redacted
    if url:
        state.wait_writable(s)  # a broker out of memory: wait instead of losing the webhook
        webhooks.enqueue(task.app, s, webhooks.build_delivery(url, result))
    return _record(result)


