"""Celery configuration derived from ``Settings`` (see infra-notes for why each value)."""
from __future__ import annotations

from kombu import Exchange, Queue

from ocrfleet.config.redis import sentinel_transport_options
from ocrfleet.config.settings import Settings

QUEUE_KINDS = ("cpu", "gpu", "any", "webhooks", "finetune")
PRIORITY_NAMES = {"high": 0, "normal": 3, "low": 6, "bulk": 9}  # Redis: 0 is the highest


def celery_config(s: Settings) -> dict:
    transport = {
        "visibility_timeout": s.visibility_timeout,
        "unacked_restore_interval": s.unacked_restore_interval,
        "unacked_restore_throttle": 1,
        "queue_order_strategy": "priority",
        "priority_steps": [0, 3, 6, 9],
        "sep": ":",
    }
    transport.update(sentinel_transport_options(s, s.broker_url))  # sentinel://: master name, auth
    return dict(
        broker_url=s.broker_url,
        result_backend=s.result_backend,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": s.visibility_timeout,
                                          **sentinel_transport_options(s, s.result_backend)},
        broker_connection_retry_on_startup=True,
        # ride out a broker restart/failover (seconds, not the default ~0.6 s): producers block
        # and publish once Redis is back instead of failing the submit
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 2.0},
        # the worker's result write retries over a Redis restart instead of losing the record
        result_backend_always_retry=True,
        result_backend_max_retries=30,
        result_backend_max_sleep_between_retries_ms=2000,
        task_queues=[Queue(s.queue(k), Exchange(s.queue(k), type="direct"), routing_key=s.queue(k))
                     for k in QUEUE_KINDS],
        task_default_queue=s.queue("cpu"),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # no STARTED record: it cost a backend GET+SET+PUBLISH per job; the task's own
        # "running" key (tasks/state.start) tells Job.status() instead
        task_track_started=False,
        task_time_limit=s.task_time_limit,
        task_soft_time_limit=s.task_soft_time_limit,
        task_default_priority=PRIORITY_NAMES["normal"],
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_proc_alive_timeout=s.proc_alive_timeout,
        worker_soft_shutdown_timeout=s.soft_shutdown_timeout,
        worker_max_memory_per_child=s.max_memory_per_child or None,
        worker_deduplicate_successful_tasks=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=s.task_events,
        task_send_sent_event=s.task_events,
        result_expires=s.result_expires,
        # the record is the task's small summary dict; extended records would copy the whole
        # job spec (up to max_spec_bytes) into Redis again for every job
        result_extended=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )


def make_celery(s: Settings, main: str = "ocrfleet", include: list[str] | None = None):
    """A Celery app configured from ``s``; the producer uses it bare, the worker with tasks."""
    from celery import Celery

    app = Celery(main, include=include or [])
    app.conf.update(celery_config(s))
    app.ocrfleet_settings = s
    return app
