"""The recognition task: one job spec in, one result object in S3, a small record in the
result backend, and a webhook. Bad input fails the job (no retry); storage hiccups retry."""
from __future__ import annotations

import os
import re
import socket
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from ocrfleet.config.settings import Settings
from ocrfleet.errors import OcrFleetError
from ocrfleet.producer import spec as jobspec
from ocrfleet.storage import results
from ocrfleet.storage.s3 import TransientStorageError
from ocrfleet.tasks import state, webhooks
from ocrfleet.tasks.pipeline import RESULT_SCHEMA, JobCancelled, run_job

RECOGNIZE_TASK = "ocrfleet.recognize"


def _error(code: str, message: str) -> dict:
    return {"code": code, "message": message[:2000]}


def _record(result: dict) -> dict:
    """What the result backend keeps: status, summary, URI, error."""
    return {k: result.get(k) for k in ("job_id", "status", "result_uri", "summary", "error", "model")}


@shared_task(bind=True, name=RECOGNIZE_TASK, acks_late=True, max_retries=None)
def recognize(self, spec: dict) -> dict:
    from ocrfleet.workers import metrics
    from ocrfleet.workers.batcher import job_recognizer
    from ocrfleet.workers.logs import get_logger
    from ocrfleet.workers.models import get_cache

    s: Settings = self.app.ocrfleet_settings
    if not isinstance(spec, dict):  # a malformed message: fail it below like any invalid spec
        spec = {"inputs": spec}
    job_id = str(spec.get("job_id") or self.request.id)
    if not re.match(jobspec.JOB_ID_PATTERN, job_id):  # never build S3 keys from a bad id
        job_id = str(self.request.id)
    model = spec.get("model_name", s.default_model)
    log = get_logger(job_id=job_id, model=model, task_id=self.request.id)
    started = time.time()
    where = f"{socket.gethostname()}:{os.getpid()}"
    base = {"schema": RESULT_SCHEMA, "job_id": job_id, "model": model, "device": s.worker_device,
            "worker": where, "metadata": spec.get("metadata"), "result_uri": results.result_uri(s, job_id),
            "started_at": started, "submitted_at": spec.get("submitted_at"),
            "webhook_url": spec.get("webhook_url")}

    deliveries, cancelled = state.start(s, job_id, where)
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
        stored = results.read_result(s, job_id)
        log.info("job.already_done", status=stored.get("status"))
        return _finish(self, s, stored, log, written=False)
    if deliveries > s.max_deliveries:
        msg = f"job was delivered {deliveries} times (workers died running it); dead-lettered"
        state.dead_letter(s, "jobs", job_id, {"spec": spec, "deliveries": deliveries})
        return _finish(self, s, {**base, "status": "failed", "error": _error("INTERNAL", msg)}, log)
    if cancelled:
        return _finish(self, s, {**base, "status": "cancelled", "error": None}, log)

    try:
        jobspec.validate(spec, s.max_spec_bytes, s.max_inputs)
        with job_recognizer(s, get_cache(s).get(model)) as recognizer:  # batched in the threads pool
            body = run_job(s, spec, recognizer,
                           cancelled=lambda: recognizer.check() or state.is_cancelled(s, job_id))
        result = {**base, **body, "status": "succeeded", "error": None, "backend": recognizer.backend_name}
    except JobCancelled:
        result = {**base, "status": "cancelled", "error": None}
    except (OcrFleetError, jobspec.SpecError) as exc:
        log.warning("job.bad_input", code=exc.code, error=str(exc))
        result = {**base, "status": "failed", "error": _error(exc.code, str(exc))}
    except TransientStorageError as exc:
        _retry(self, s, exc, log)  # raises Retry while retries are left
        result = {**base, "status": "failed",
                  "error": _error("INTERNAL", f"storage unavailable after {s.storage_retries} retries: {exc}")}
    except SoftTimeLimitExceeded:
        result = {**base, "status": "failed",
                  "error": _error("INTERNAL", f"job exceeded the {s.task_soft_time_limit} s time limit")}
    except Exception as exc:  # noqa: BLE001 - a bug must fail the job, not the worker
        log.exception("job.internal_error")
        result = {**base, "status": "failed", "error": _error("INTERNAL", f"{type(exc).__name__}: {exc}")}

    finished = time.time()
    result["finished_at"] = finished
    result.setdefault("timings", {})
    result["timings"]["total_s"] = round(finished - started, 4)
    if spec.get("submitted_at"):
        result["timings"]["queued_s"] = round(started - spec["submitted_at"], 4)
        metrics.QUEUE_WAIT.labels(model).observe(max(0.0, started - spec["submitted_at"]))
    metrics.LATENCY.labels(model).observe(finished - started)
    try:
        return _finish(self, s, result, log, webhook_url=spec.get("webhook_url"))
    except TransientStorageError as exc:
        _retry(self, s, exc, log)
        log.error("job.result_not_written", error=str(exc))  # the backend record still tells
        result["result_uri"] = None
        result["error"] = result["error"] or _error("INTERNAL", f"result could not be stored: {exc}")
        result["status"] = "failed"
        return _finish(self, s, result, log, written=False, webhook_url=spec.get("webhook_url"))


def _retry(task, s: Settings, exc: Exception, log) -> None:
    """Raise celery's Retry with exponential backoff; return when no retries are left."""
    if task.request.retries >= s.storage_retries:
        log.error("job.storage_unavailable", error=str(exc))
        return
    # below the visibility timeout: a retry waiting longer would be restored and run twice
    delay = min(60.0, s.visibility_timeout / 2, s.storage_backoff_base * 2 ** task.request.retries)
    log.warning("job.storage_retry", error=str(exc), retry_in_s=delay)
    raise task.retry(countdown=delay, exc=exc)


def _finish(task, s: Settings, result: dict, log, written: bool = True, webhook_url: str | None = None):
    from ocrfleet.workers import metrics

    job_id = result["job_id"]
    if written:
        created, result = results.write_result(s, job_id, result)
        if not created:
            log.info("job.result_existed")
    err = result.get("error") or {}
    metrics.JOBS.labels(result["status"], result.get("model", ""), err.get("code", "")).inc()
    if result.get("summary"):
        metrics.LINES.labels(result.get("model", "")).inc(result["summary"].get("lines", 0))
    log.info("job.finished", status=result["status"], code=err.get("code"),
             lines=(result.get("summary") or {}).get("lines"), timings=result.get("timings"))
    url = webhook_url or _stored_webhook(result)
    if url:
        webhooks.enqueue(task.app, s, webhooks.build_delivery(url, result))
    return _record(result)


def _stored_webhook(result: dict) -> str | None:
    return result.get("webhook_url")
