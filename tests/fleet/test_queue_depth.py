"""Queue depth gauges: read from the real broker on each scrape of the worker's /metrics."""
from __future__ import annotations

import dataclasses
import time
import urllib.request
import uuid

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ocrfleet.workers.metrics import QueueDepthCollector, priority_lists

from ocrfleet.testing.servers import free_port

pytestmark = pytest.mark.timeout(60)


def _depths(families) -> dict[tuple[str, str], float]:
    return {(s.labels["queue"], s.labels["priority"]): s.value
            for f in families if f.name == "ocrfleet_queue_depth" for s in f.samples}


def _scrape(worker) -> list:
    port = worker.args[worker.args.index("--metrics-port") + 1]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return list(text_string_to_metric_families(body))


def test_priority_list_names_match_kombu(settings):
    # the same names test_deploy_files.py sees kombu write into Redis
    q = settings.queue("gpu")
    assert priority_lists(settings, "gpu") == [("0", q), ("3", q + ":3"), ("6", q + ":6"), ("9", q + ":9")]


def test_worker_metrics_show_pending_jobs_per_priority_list(producer, settings, worker, inputs):
    """Nothing consumes ocr.gpu here: N jobs submitted there are N more on the next scrape."""
    before = _depths(_scrape(worker))
    gpu = settings.queue("gpu")
    assert {(gpu, p) for p in ("0", "3", "6", "9")} <= set(before)
    assert {(settings.queue(k), "0") for k in ("cpu", "any", "webhooks")} <= set(before)
    plan = {"0": 2, "3": 3, "9": 1}
    for prio, n in plan.items():
        for _ in range(n):
            producer.submit([inputs["lines"][0]], device="gpu", priority=int(prio))
    families = _scrape(worker)
    after = _depths(families)
    for prio in ("0", "3", "6", "9"):
        assert after[(gpu, prio)] - before[(gpu, prio)] == plan.get(prio, 0), (prio, before, after)
    up = [s.value for f in families if f.name == "ocrfleet_queue_depth_up" for s in f.samples]
    assert up == [1.0]


def test_collector_counts_exactly_and_survives_redis_down(settings):
    from ocrfleet.producer import Producer

    fresh = dataclasses.replace(settings, queue_prefix=f"qd{uuid.uuid4().hex[:6]}.")
    producer = Producer(fresh)
    for i in range(7):
        producer.submit(["s3://inputs/x.png"], priority=("high", "normal", "low", "bulk")[i % 4])
    depths = _depths(QueueDepthCollector(fresh).collect())
    cpu = fresh.queue("cpu")
    assert {p: depths[(cpu, p)] for p in ("0", "3", "6", "9")} == {"0": 2, "3": 2, "6": 2, "9": 1}
    assert sum(depths.values()) == 7

    down = dataclasses.replace(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    t0 = time.monotonic()
    families = list(QueueDepthCollector(down, timeout=0.5).collect())
    assert time.monotonic() - t0 < 3
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("ocrfleet_queue_depth_up", [0.0])]
    registry = CollectorRegistry(auto_describe=True)  # like the default REGISTRY
    registry.register(QueueDepthCollector(down, timeout=0.5))
    assert b"ocrfleet_queue_depth_up 0.0" in generate_latest(registry)
