"""The worker's Celery app (``celery -A ocrfleet.workers.app worker``) and its process hooks:
models load once per child after fork (``worker_process_init``) and are warmed up there."""
from __future__ import annotations

import os

from celery import signals

from ocrfleet.config.celery import make_celery
from ocrfleet.config.settings import load_settings
from ocrfleet.workers import kombu_fixes, logs, metrics
from ocrfleet.workers.models import get_cache, reset_cache

kombu_fixes.apply()  # survive a Redis restart (see the module)
settings = load_settings()
app = make_celery(settings, main="ocrfleet-worker",
                  include=["ocrfleet.tasks.recognize", "ocrfleet.tasks.webhooks"])


@signals.worker_init.connect
def _on_worker_init(**_):
    logs.configure(settings.log_level)
    logs.get_logger().info("worker.start", settings=settings.public(), pid=os.getpid())
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings)
    if settings.worker_pool == "threads":  # no child processes: load, warm and batch here
        _on_process_init()
        from ocrfleet.workers.batcher import get_batcher

        for name in settings.worker_models:
            get_batcher(settings, name, get_cache(settings).get(name))


@signals.worker_process_init.connect
def _on_process_init(**_):
    logs.configure(settings.log_level)
    reset_cache()
    cache = get_cache(settings)
    for name in settings.worker_models:  # load (and log "model.loaded") before the first job
        cache.get(name)


@signals.worker_process_shutdown.connect
def _on_process_shutdown(pid=None, **_):
    metrics.child_exited(pid or os.getpid())
