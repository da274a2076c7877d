"""The worker's Celery app (``celery -A ocrfleet.workers.app worker``) and its process hooks:
models load once per child after fork (``worker_process_init``) and are warmed up there."""
from __future__ import annotations

import os

from celery import signals

from ocrfleet.config.celery import make_celery
from ocrfleet.config.settings import load_settings
from ocrfleet import redaction
from ocrfleet.jobs.contract import FINALIZE_TASK, JOB_TASKS
from ocrfleet.tasks.recognize import job_summary
from ocrfleet.tasks.webhooks import check_secrets
from ocrfleet.workers import kombu_fixes, logs, metrics
from ocrfleet.workers.models import get_cache, reset_cache

settings = load_settings()
kombu_fixes.apply(settings)  # survive a Redis restart, poison messages, a broker out of memory
redaction.install_logging()  # Celery's own log lines too: no credentials, no presigned signatures
app = make_celery(settings, main="ocrfleet-worker",
                  include=["ocrfleet.tasks.recognize", "ocrfleet.tasks.finetune", "ocrfleet.tasks.webhooks"])


@signals.worker_init.connect
def _on_worker_init(**_):
    logs.configure(settings.log_level)
    try:
        check_secrets(settings)
        check_model_locations(settings)
    except ValueError as exc:
        logs.get_logger().critical("worker.refused", error=str(exc))
        raise SystemExit(f"ocrfleet worker: {exc}") from None
    logs.get_logger().info("worker.start", settings=settings.public(), pid=os.getpid())
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings)
    if settings.worker_pool == "threads":  # no child processes: load, warm and batch here
        _on_process_init()
        from ocrfleet.workers.batcher import get_batcher, recognizer_name

        from ocrfleet.workers.page_models import model_kind

        for name in settings.worker_models:
            if model_kind(name) == "rec":  # detectors (page jobs) are not batched across jobs
                rec = get_cache(settings).get(name)
                get_batcher(settings, recognizer_name(rec), rec)


def check_model_locations(s) -> None:
    """Malformed ``model_dirs`` / ``allowed_model_roots`` entries stop the worker at start (not
    one job at a time later); ValueError naming the entry."""
    from ocrfleet.jobs import model_dirs

    model_dirs.named(s)
    for root in s.allowed_model_roots:
        try:
            model_dirs.split(root)
        except ValueError as exc:
            raise ValueError(f"allowed_model_roots entry {root!r}: {exc}") from None


@signals.worker_process_init.connect
def _on_process_init(**_):
    logs.configure(settings.log_level)
    reset_cache()
    from ocrfleet.storage import s3

    s3.reset()  # never share the parent's HTTP connection pool across fork
    if settings.ort_shared_arena_mb > 0:  # before any model loads: det + rec share one arena
        from ocrfleet.recognition.backends.onnxruntime import share_cpu_arena

        share_cpu_arena(settings.ort_shared_arena_mb)
    cache = get_cache(settings)
    for name in settings.worker_models:  # load (and log "model.loaded") before the first job
        cache.get(name)


@signals.worker_shutdown.connect
def _remove_metrics_dir(**_):
    """The Prometheus multiprocess directory `ocrfleet worker` made for this worker."""
    import shutil

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and os.environ.get("OCRFLEET_PROM_DIR_TEMP") == "1":
        shutil.rmtree(path, ignore_errors=True)


@signals.worker_process_shutdown.connect
def _on_process_shutdown(pid=None, **_):
    metrics.child_exited(pid or os.getpid())


@signals.task_failure.connect
def _on_task_failure(sender=None, task_id=None, exception=None, args=None, **_):
    """The hard time limit kills the child: the parent finishes the job (TIME_LIMIT)."""
    from billiard.exceptions import TimeLimitExceeded

    if isinstance(exception, TimeLimitExceeded) and getattr(sender, "name", "") in JOB_TASKS:
        _finalize(task_id, args, "failed", "TIME_LIMIT",
                  f"job exceeded the {settings.task_time_limit} s hard time limit; its process was killed")


@signals.task_revoked.connect
def _on_task_revoked(sender=None, request=None, expired=False, **_):
    """A job cancelled while queued never runs: the parent finishes it (CANCELLED)."""
    if getattr(sender, "name", "") in JOB_TASKS and request is not None:
        _finalize(request.id, getattr(request, "args", None), "cancelled", "CANCELLED",
                  "job expired before it ran" if expired else "job was cancelled before it ran")


def _finalize(task_id, args, status: str, code: str, message: str) -> None:
    """Hand the job's ending to a child (``ocrfleet.finalize`` on the webhooks queue): result
    object, backend record and webhook like any other job; nothing is written from here."""
    spec = args[0] if args and isinstance(args[0], dict) else {}
    try:
        app.send_task(FINALIZE_TASK, args=[job_summary(spec, task_id), status, code, message],
                      queue=settings.queue("webhooks"))
    except Exception as exc:  # noqa: BLE001 - the backend already holds the failure/revoke record
        logs.get_logger(job_id=task_id).error("job.finalize_not_sent", error=str(exc))
