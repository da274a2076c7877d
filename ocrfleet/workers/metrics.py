"""Prometheus metrics. With prefork, set PROMETHEUS_MULTIPROC_DIR (``ocrfleet worker
--metrics-port`` does) so the parent's HTTP endpoint aggregates every child."""
from __future__ import annotations

import os
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

JOBS = Counter("ocrfleet_jobs_total", "Finished jobs by status", ["status", "model", "code"])
LATENCY = Histogram("ocrfleet_job_seconds", "Job run time in the worker", ["model"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
QUEUE_WAIT = Histogram("ocrfleet_queue_wait_seconds", "Submit to start", ["model"],
                       buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
LINES = Counter("ocrfleet_lines_total", "Recognised text lines", ["model"])
MODEL_LOAD = Histogram("ocrfleet_model_load_seconds", "Model load + warm-up time", ["model", "backend"],
                       buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300))
BATCH_JOBS = Histogram("ocrfleet_batch_jobs", "Jobs per model call of the cross-job batcher (threads pool)",
                       ["model"], buckets=(1, 2, 4, 8, 16, 32, 64))
BATCH_LINES = Histogram("ocrfleet_batch_lines", "Lines per model call of the cross-job batcher (threads pool)",
                        ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
POISON = Counter("ocrfleet_poison_messages_total",
                 "Queue messages that could not be decoded, dead-lettered by the worker", ["reason"])
BUDGET = Counter("ocrfleet_budget_refusals_total", "Jobs refused by the per-job pixel budget", ["what"])
MODEL_BACKEND = Gauge("ocrfleet_model_backend", "1 for the backend each loaded model runs on, by device",
                      ["model", "backend", "device"], multiprocess_mode="max")
GPU_STACK = Gauge("ocrfleet_gpu_stack", "1 for the GPU inference stack this GPU worker chose (paddle, "
                  "onnxruntime, torch), 0 for the others", ["stack"], multiprocess_mode="max")
WEBHOOKS = Counter("ocrfleet_webhook_deliveries_total", "Webhook attempts by outcome", ["outcome"])


def record_model_load(name: str, rec) -> None:
    MODEL_LOAD.labels(name, rec.backend_name).observe(getattr(rec, "warm_seconds", rec.load_seconds))
    opts = getattr(rec, "opts", None)
    device = f"{opts.device}:{opts.device_id}" if opts is not None else os.environ.get("OCRFLEET_WORKER_DEVICE", "cpu")
    MODEL_BACKEND.labels(name, rec.backend_name, device).set(1)


def priority_lists(s, kind: str) -> list[tuple[str, str]]:
    """(priority, Redis list name) of every list kombu uses for queue ``kind``: the bare name for
    priority 0 and ``<queue><sep><step>`` for the other steps, with the broker transport
    options of ``ocrfleet.config.celery`` (``sep=":"``, steps 0/3/6/9; kombu's own default
    separator would be ``"\\x06\\x16"``)."""
    from ocrfleet.config.celery import celery_config

    opts = celery_config(s)["broker_transport_options"]
    sep, steps = opts.get("sep", "\x06\x16"), opts.get("priority_steps", [0, 3, 6, 9])
    queue = s.queue(kind)
    return [(str(p), f"{queue}{sep}{p}" if p else queue) for p in steps]


class QueueDepthCollector:
    """Pending messages per queue and priority list, read on scrape with one pipelined LLEN per
    list (plus HLEN of kombu's ``unacked`` hash). Short timeouts and no retries: with Redis down
    a scrape still answers quickly, with ``ocrfleet_queue_depth_up 0`` and no depth samples."""

    def __init__(self, s, timeout: float = 1.0):
        self.settings = s
        self.timeout = timeout
        self._client = None
        self._lock = threading.Lock()
        from ocrfleet.config.celery import celery_config

        self.unacked_key = celery_config(s)["broker_transport_options"].get("unacked_key", "unacked")

    def _redis(self):
        if self._client is None:
            from ocrfleet.config.redis import client_for

            self._client = client_for(self.settings, "broker", retries=0, socket_timeout=self.timeout,
                                      socket_connect_timeout=self.timeout)
        return self._client

    def describe(self):  # so registering does not read Redis (REGISTRY auto-describes)
        return self._families()

    @staticmethod
    def _families():
        return [GaugeMetricFamily("ocrfleet_queue_depth",
                                  "Messages waiting in the broker per queue and priority list",
                                  labels=["queue", "priority"]),
                GaugeMetricFamily("ocrfleet_queue_unacked",
                                  "Messages delivered to workers and not yet acknowledged (all queues)"),
                GaugeMetricFamily("ocrfleet_queue_depth_up", "1 if the broker could be read on this scrape")]

    def collect(self):
        from ocrfleet.config.celery import QUEUE_KINDS

        depth, unacked, up = self._families()
        lists = [(self.settings.queue(k), prio, name) for k in QUEUE_KINDS
                 for prio, name in priority_lists(self.settings, k)]
        try:
            with self._lock:  # overlapping scrapes: one broker read at a time
                pipe = self._redis().pipeline(transaction=False)
                for _, _, name in lists:
                    pipe.llen(name)
                pipe.hlen(self.unacked_key)
                values = pipe.execute()
        except Exception:  # noqa: BLE001 - Redis down, wrong URL, not Redis: report it, don't fail
            up.add_metric([], 0)
            yield up
            return
        for (queue, prio, _), n in zip(lists, values):
            depth.add_metric([queue, prio], n)
        unacked.add_metric([], values[-1])
        up.add_metric([], 1)
        yield from (depth, unacked, up)


def serve(port: int, settings=None) -> None:
    """Expose /metrics on ``port`` (call in the worker's main process). With ``settings``, the
    broker's queue depths are collected on each scrape too."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    if settings is not None and settings.broker_url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        registry.register(QueueDepthCollector(settings))
    start_http_server(port, addr="0.0.0.0", registry=registry)


def child_exited(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
