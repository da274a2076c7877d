"""Every name producers and workers must spell the same way: Celery task names, the result
schema id, job statuses, the Redis keys of a job, the S3 keys of its result and images, and
how a finished job's backend record is stored (``JobFailed``: Celery's FAILURE state)."""
from __future__ import annotations

import enum

RECOGNIZE_TASK = "ocrfleet.recognize"
FINETUNE_TASK = "ocrfleet.finetune"    # on its own queue, ``Settings.queue("finetune")``
FINALIZE_TASK = "ocrfleet.finalize"
DELIVER_TASK = "ocrfleet.deliver_webhook"
JOB_TASKS = (RECOGNIZE_TASK, FINETUNE_TASK)  # tasks whose one argument is a job spec
TASKS = (*JOB_TASKS, FINALIZE_TASK, DELIVER_TASK)
RESULT_SCHEMA = "ocrfleet.result/v1"


class JobStatus(enum.StrEnum):
    """A job's status, as ``Job.status()``, the result object, the backend record and the
    webhook spell it. A ``str``: ``JobStatus.FAILED == "failed"``."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


# Celery states -> job status (SUCCESS and PENDING need the record or Redis to tell)
CELERY_STATES = {"PENDING": JobStatus.QUEUED, "RECEIVED": JobStatus.QUEUED, "STARTED": JobStatus.RUNNING,
                 "RETRY": JobStatus.RETRYING, "REVOKED": JobStatus.CANCELLED, "FAILURE": JobStatus.FAILED}


def celery_state(status: str) -> str:
    """The Celery state a finished job's backend record is stored with: FAILURE for a failed
    job (Flower and ``celery inspect`` show it as a failure), REVOKED for a cancelled one."""
    return {JobStatus.FAILED: "FAILURE", JobStatus.CANCELLED: "REVOKED"}.get(status, "SUCCESS")


class JobFailed(Exception):
    """Raised by the recognise task for a job that did not succeed, so Celery records it as
    FAILURE; carries the job's summary record (status, error code and message, result_uri).
    Rebuilt by the producer from the backend (``Job.result()`` returns ``.record``)."""

    def __init__(self, record: dict | None = None, *_):
        self.record = record if isinstance(record, dict) else {}
        super().__init__(self.record)

    def __str__(self) -> str:
        err = self.record.get("error") or {}
        return f"{err.get('code', 'FAILED')}: {err.get('message', '')}"

    def __repr__(self) -> str:
        return f"JobFailed({self})"


def record_of(state: str, result) -> dict | None:
    """The summary record of a finished job from its backend state and decoded result (a dict
    for SUCCESS, a ``JobFailed`` for FAILURE/REVOKED); None for anything else."""
    if state == "SUCCESS" and isinstance(result, dict):
        return result
    if isinstance(result, JobFailed) and result.record:
        return result.record
    if isinstance(result, dict) and result.get("exc_type") == "JobFailed":  # raw backend JSON
        args = result.get("exc_message") or [{}]
        return args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else None
    return None


# -- Redis keys (``Settings.key_prefix``) ----------------------------------------------------
def job_key(s, job_id: str) -> str:
    """The producer's idempotency claim (``<digest>:<token>[:durable]``)."""
    return s.key("job", job_id)


def running_key(s, job_id: str) -> str:
    """``host:pid`` of the worker running the job (expires with the visibility timeout)."""
    return s.key("running", job_id)


def cancel_key(s, job_id: str) -> str:
    return s.key("cancel", job_id)


def deliveries_key(s, job_id: str) -> str:
    """How many times the job's message was delivered (poison detection)."""
    return s.key("deliveries", job_id)


def dead_key(s, kind: str) -> str:
    """Dead letters: hash ``jobs`` / ``webhooks`` (id -> record), list ``messages``."""
    return s.key("dead", kind)


def webhook_sent_key(s, delivery_id: str) -> str:
    return s.key("webhook-sent", delivery_id)


def writable_key(s) -> str:
    return s.key("writable")


def replication_probe_key(s) -> str:
    return s.key("replication-probe")


# -- S3 result keys (``Settings.results_bucket`` / ``results_prefix``) -------------------------
def result_key(s, job_id: str) -> str:
    return f"{s.results_prefix}/{job_id}.json"


def result_uri(s, job_id: str) -> str:
    return f"s3://{s.results_bucket}/{result_key(s, job_id)}"


def visual_key(s, job_id: str, name) -> str:
    """A line's (``name`` = its index) or a page's (``page-<n>``) visualisation PNG."""
    return f"{s.results_prefix}/{job_id}/{name}.png"


def visual_uri(s, job_id: str, name) -> str:
    return f"s3://{s.results_bucket}/{visual_key(s, job_id, name)}"
