from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ocrfleet.config.settings import to_env
from ocrfleet.testing.servers import free_port, isolated_settings, RedisServer, WebhookReceiver, WeedS3, Worker

DATA = Path(__file__).resolve().parents[1] / "data" / "real"
MODEL = "PP-OCRv6_tiny_rec"
SECRET = "test-webhook-secret"
MODELS_ROOT = "ok"  # jobs' model_dir may point under s3://models/ok (test_custom_models.py)


@pytest.fixture(scope="session")
def s3_server():
    server = WeedS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webhook_receiver():
    rec = WebhookReceiver().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="session")
def settings(s3_server, redis_server, webhook_receiver, tmp_path_factory):
    port = webhook_receiver.url.rsplit(":", 1)[1]  # the allow-list names host:port (a bare host: 80/443)
    return isolated_settings(
        redis_server.url, s3_server, "fleet", SECRET, MODEL, storage_backoff_base=0.3,
        allowed_http_hosts=[f"127.0.0.1:{port}"], allowed_model_roots=[f"s3://models/{MODELS_ROOT}"],
        model_fetch_dir=str(tmp_path_factory.mktemp("fetched-models")),
        visibility_timeout=120, unacked_restore_interval=2, task_time_limit=90, task_soft_time_limit=80,
        storage_retries=2)


@pytest.fixture(scope="session")
def producer(settings):
    from ocrfleet.producer import Producer

    return Producer(settings)


@pytest.fixture(scope="session")
def worker(settings, producer):
    w = Worker(to_env(settings), name=f"w{uuid.uuid4().hex[:6]}", concurrency=2,
               extra=["--metrics-port", str(free_port())]).start(producer.app)
    yield w
    w.stop()


@pytest.fixture(scope="session")
def inputs(s3_server):
    """Real data uploaded to s3://inputs/: line images, the receipt photos, PDFs."""
    c = s3_server.client()
    refs = {"lines": [], "labels": {}}
    for tsv in sorted(DATA.glob("rec/*/labels.tsv")):
        for line in tsv.read_text().splitlines():
            rel, label = line.split("\t", 1)
            path = tsv.parent / rel
            key = f"lines/{tsv.parent.name}/{path.name}"
            c.put_object(Bucket="inputs", Key=key, Body=path.read_bytes())
            refs["lines"].append(f"s3://inputs/{key}")
            refs["labels"][f"s3://inputs/{key}"] = label
    for path in DATA.glob("receipts/wildreceipt/*.jpeg"):
        c.put_object(Bucket="inputs", Key=f"receipts/{path.name}", Body=path.read_bytes())
    for path in DATA.glob("pdf/*.pdf"):
        c.put_object(Bucket="inputs", Key=f"pdf/{path.name}", Body=path.read_bytes())
    c.put_object(Bucket="inputs", Key="corrupt.png", Body=b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    return refs
