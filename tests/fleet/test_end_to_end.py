"""End to end through real Redis, SeaweedFS and a prefork Celery worker subprocess."""
from __future__ import annotations

import json

import pytest

from ocrfleet.producer import verify_signature
from ocrfleet.storage.results import read_result

from .conftest import SECRET

pytestmark = pytest.mark.timeout(120)


def _hook_for(receiver, job_id, count=1, timeout=30):
    return receiver.wait_for(lambda r: json.loads(r["body"]).get("job_id") == job_id, count, timeout)


def test_lines_job_result_backend_and_signed_webhook(producer, settings, worker, inputs, webhook_receiver):
    refs = [r for r in inputs["lines"] if "wildreceipt_lines" in r][:12]
    job = producer.submit(refs, batch_size=4, webhook_url=webhook_receiver.url + "/hook",
                          metadata={"batch": "e2e"})
    record = job.result(timeout=60)
    assert record["status"] == "succeeded", record
    assert record["result_uri"] == job.result_uri
    assert record["summary"]["lines"] == 12
    assert job.status() == "succeeded"

    result = read_result(settings, job.id)
    assert result["job_id"] == job.id and result["model"] == "PP-OCRv6_tiny_rec"
    assert result["backend"] == "onnxruntime" and result["device"] == "cpu"
    assert result["metadata"] == {"batch": "e2e"}
    assert {"fetch_s", "decode_s", "recognize_s", "total_s", "queued_s"} <= set(result["timings"])
    assert [it["input_path"] for it in result["items"]] == refs
    norm = lambda t: "".join(t.split()).lower()  # noqa: E731
    correct = sum(norm(it["rec_text"]) == norm(inputs["labels"][it["input_path"]]) for it in result["items"])
    assert correct >= 6, [(it["rec_text"], inputs["labels"][it["input_path"]]) for it in result["items"]]
    assert all(0 <= it["rec_score"] <= 1 and it["page_index"] is None for it in result["items"])

    hook = _hook_for(webhook_receiver, job.id)[0]
    verify_signature(SECRET, hook["headers"], hook["body"])
    payload = json.loads(hook["body"])
    assert payload["status"] == "succeeded" and payload["result_uri"] == job.result_uri
    assert payload["summary"]["lines"] == 12
    assert hook["headers"]["webhook-id"].startswith("msg_")


def test_pdf_pages(producer, settings, worker, inputs):
    job = producer.submit("s3://inputs/pdf/multipage.pdf", pages=[0, 2], mode="line")  # one item a page
    record = job.result(timeout=60)
    assert record["status"] == "succeeded", record
    result = read_result(settings, job.id)
    assert [it["page_index"] for it in result["items"]] == [0, 2]


def test_receipt_regions_quads(producer, settings, worker, inputs):
    from .conftest import DATA

    ann = [json.loads(line) for line in (DATA / "receipts/wildreceipt/annotations.jsonl").read_text().splitlines()]
    receipt = next(a for a in ann if a["file_name"] == "1.jpeg")
    anns = receipt["annotations"][:25]
    quads = [[[a["box"][i], a["box"][i + 1]] for i in range(0, 8, 2)] for a in anns]
    job = producer.submit("s3://inputs/receipts/1.jpeg", regions=quads)
    record = job.result(timeout=60)
    assert record["status"] == "succeeded", record
    items = read_result(settings, job.id)["items"]
    assert [it["region_index"] for it in items] == list(range(len(quads)))
    norm = lambda t: "".join(t.split()).lower()  # noqa: E731
    hits = sum(norm(it["rec_text"]) == norm(a["text"]) for it, a in zip(items, anns))
    assert hits >= len(anns) // 2, [(it["rec_text"], a["text"]) for it, a in zip(items, anns)]


def test_status_running_while_a_worker_runs_the_job(producer, worker, inputs):
    """No STARTED record (task_track_started is off): the worker's running mark tells."""
    import time

    job = producer.submit(inputs["lines"][0], regions=[[0, 0, 40, 20]] * 300)  # ~1-3 s of model time
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline:
        status = job.status()
        seen.add(status)
        if status == "succeeded":
            break
        time.sleep(0.02)
    assert "running" in seen and status == "succeeded", seen
    assert seen <= {"queued", "running", "succeeded"}


def test_backend_record_is_the_summary_not_the_spec(producer, settings, worker, inputs):
    """The backend keeps the small record; the spec (here 20 KB of metadata) is not copied."""
    import redis

    job = producer.submit(inputs["lines"][0], metadata={"blob": "x" * 20000})
    assert job.result(timeout=60)["status"] == "succeeded"
    backend = producer.app.backend
    raw = redis.Redis.from_url(settings.result_backend).get(backend.get_key_for_task(job.id))
    meta = json.loads(raw)
    assert meta["status"] == "SUCCESS" and meta["result"]["result_uri"] == job.result_uri
    assert len(raw) < 2000 and "blob" not in raw.decode(), len(raw)
