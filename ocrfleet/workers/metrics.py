"""Prometheus metrics. With prefork, set PROMETHEUS_MULTIPROC_DIR (``ocrfleet worker
--metrics-port`` does) so the parent's HTTP endpoint aggregates every child."""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

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
WEBHOOKS = Counter("ocrfleet_webhook_deliveries_total", "Webhook attempts by outcome", ["outcome"])


def record_model_load(name: str, rec) -> None:
    MODEL_LOAD.labels(name, rec.backend_name).observe(getattr(rec, "warm_seconds", rec.load_seconds))


def serve(port: int) -> None:
    """Expose /metrics on ``port`` (call in the worker's main process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, addr="0.0.0.0", registry=registry)
    else:
        start_http_server(port, addr="0.0.0.0")


def child_exited(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
