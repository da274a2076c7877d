"""Bad input fails the job with a code (no retry) and the worker keeps serving; specs are
validated before anything is enqueued; job ids are idempotency keys."""
from __future__ import annotations

import json
import uuid

import pytest
import redis

from ocrfleet.jobs.contract import RECOGNIZE_TASK, job_key
from ocrfleet.producer import JobConflictError, JobStatus, SpecError
from ocrfleet.storage.results import read_result
from ocrfleet.jobs import contract as keys

from .conftest import DATA

pytestmark = pytest.mark.timeout(120)


def test_missing_object_is_not_found(producer, settings, worker, inputs):
    job = producer.submit("s3://inputs/does/not/exist.png")
    record = job.result(timeout=60)
    assert record["status"] == "failed"
    assert record["error"]["code"] == "NOT_FOUND", record
    assert job.status() == "failed" and job.status() is JobStatus.FAILED
    stored = read_result(settings, job.id)
    assert stored["error"]["code"] == "NOT_FOUND" and "does/not/exist.png" in stored["error"]["message"]
    # Celery tooling sees a failure: state FAILURE, the exception names the error code
    meta = json.loads(redis.Redis.from_url(settings.result_backend).get(
        producer.app.backend.get_key_for_task(job.id)))
    assert meta["status"] == "FAILURE", meta
    assert meta["result"]["exc_type"] == "JobFailed" and meta["result"]["exc_module"] == "ocrfleet.jobs.contract"
    assert meta["result"]["exc_message"][0]["error"]["code"] == "NOT_FOUND"
    assert producer.app.AsyncResult(job.id).state == "FAILURE"
    assert record["result_uri"] == job.result_uri  # the result object stays


def test_missing_bucket_is_not_found(producer, worker, inputs):
    record = producer.submit("s3://no-such-bucket/x.png").result(timeout=60)
    assert record["error"]["code"] == "NOT_FOUND", record


def test_corrupt_image_fails_and_next_job_succeeds(producer, worker, inputs):
    bad = producer.submit(["s3://inputs/corrupt.png"])
    good = producer.submit([inputs["lines"][-1]])
    record = bad.result(timeout=60)
    assert record["status"] == "failed" and record["error"]["code"] == "INVALID_INPUT", record
    assert good.result(timeout=60)["status"] == "succeeded"


def test_unknown_model_refused_at_submit_and_by_the_worker(producer, settings, worker, inputs):
    with pytest.raises(SpecError, match=r"unknown model 'PP-OCRv5_mobil_rec'; did you mean 'PP-OCRv5_mobile_rec'"):
        producer.submit([inputs["lines"][0]], model_name="PP-OCRv5_mobil_rec")
    with pytest.raises(SpecError, match=r"det_model_name: 'PP-OCRv5_mobile_rec' is a rec model, not a det model"):
        producer.submit([inputs["lines"][0]], det_model_name="PP-OCRv5_mobile_rec")
    # a producer with another catalogue (or none) sends it anyway: the worker refuses it
    job_id = f"model-{uuid.uuid4().hex[:8]}"
    spec = {"spec_version": 1, "job_id": job_id, "model_name": "PP-OCRv9_imaginary_rec",
            "inputs": [{"ref": inputs["lines"][0]}]}
    producer.app.send_task(RECOGNIZE_TASK, args=[spec], task_id=job_id, queue=settings.queue("cpu"))
    record = producer.job(job_id).result(timeout=60)
    assert record["error"]["code"] == "MODEL_UNAVAILABLE", record


def test_pdf_page_out_of_range_is_invalid(producer, worker, inputs):
    record = producer.submit("s3://inputs/pdf/render.pdf", pages=[99]).result(timeout=60)
    assert record["error"]["code"] == "INVALID_INPUT", record


def test_file_refs_under_allowed_root(producer, settings, worker):
    path = sorted((DATA / "rec/wildreceipt_lines/imgs").iterdir())[0]
    job = producer.submit(f"file://{path}")
    assert job.result(timeout=60)["status"] == "succeeded"
    with pytest.raises(SpecError, match="allowed file root; to allow it, add it to the allowed_file_roots "
                                        r"setting \(OCRFLEET_ALLOWED_FILE_ROOTS\); producers and workers both"):
        producer.submit("file:///etc/passwd")
    with pytest.raises(SpecError, match=r"'\.\.'"):
        producer.submit(f"file://{DATA}/../../../etc/passwd")


def _queued(settings) -> int:
    r = redis.Redis.from_url(settings.broker_url)
    return sum(r.llen(k) for k in r.keys(settings.queue("*") + "*"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(inputs=["ftp://x/y.png"]), "does not match"),
    (dict(inputs=["s3://bucket-only"]), "s3://bucket/key"),
    (dict(inputs=["s3://b/k.png"], batch_size=0), "batch_size"),
    (dict(inputs=["s3://b/k.png"], device="tpu"), "device"),
    (dict(inputs=["s3://b/k.png"], job_id="bad id with spaces"), "job_id"),
    (dict(inputs=["s3://b/k.png"], regions=[[[1, 2, 3]]]), "regions"),
    (dict(inputs=["s3://b/k.png"], regions=5), "regions is malformed"),               # was a TypeError
    (dict(inputs=["s3://b/k.png"], regions=[[1, 2, "x", 4]]), "a region is a box"),   # was a ValueError
    (dict(inputs=["s3://b/k.png"], pages=3), "pages is malformed"),
    (dict(inputs=["https://evil.example/a.png"]), "allow-listed; to allow it, add it to the allowed_http_hosts"),
    (dict(inputs=["s3://b/k.png"], webhook_url="http://10.0.0.1/h"), "webhook_allow_private"),
    (dict(inputs=["s3://b/k.png"], metadata={"blob": "x" * 300_000}), "limit"),
])
def test_bad_spec_rejected_before_enqueue(producer, settings, kwargs, message):
    kwargs = dict(kwargs)
    before = _queued(settings)
    job_id = kwargs.pop("job_id", None) or uuid.uuid4().hex
    with pytest.raises(SpecError, match=message):
        producer.submit(kwargs.pop("inputs"), job_id=job_id, **kwargs)
    assert _queued(settings) == before
    assert not redis.Redis.from_url(settings.redis).exists(job_key(settings, job_id))


def test_idempotent_resubmit(producer, settings, worker, inputs):
    job_id = f"idem-{uuid.uuid4().hex[:8]}"
    first = producer.submit([inputs["lines"][1]], job_id=job_id)
    second = producer.submit([inputs["lines"][1]], job_id=job_id)
    assert first.created and not second.created and second.id == job_id
    assert first.result(timeout=60)["status"] == "succeeded"
    third = producer.submit([inputs["lines"][1]], job_id=job_id)
    assert not third.created and third.result(timeout=5)["status"] == "succeeded"
    with pytest.raises(JobConflictError):
        producer.submit([inputs["lines"][2]], job_id=job_id)
    r = redis.Redis.from_url(settings.redis)
    assert int(r.get(keys.deliveries_key(settings, job_id))) == 1  # executed once


def test_cancel_before_start(producer, settings, inputs):
    # no worker consumes the gpu queue here: the job waits, is cancelled, then a worker drops it
    job = producer.submit([inputs["lines"][0]], device="gpu")
    job.cancel()
    assert job.status() == "cancelled"


def test_result_of_a_cancelled_job_waits_for_its_own_record(producer, monkeypatch):
    """Celery stores REVOKED the moment a job is cancelled; the job's own record (a fine-tune
    stopped at step N, or a queued job finalized by the worker's parent) comes a moment later:
    ``Job.result()`` waits for it, and without one within ``REVOKE_GRACE_S`` says cancelled."""
    import threading
    import time

    from ocrfleet.producer import client

    backend = producer.app.backend
    job_id = f"revoked-{uuid.uuid4().hex}"
    record = {"job_id": job_id, "status": "cancelled", "result_uri": None, "summary": None,
              "error": {"code": "CANCELLED", "message": "stopped on request at step 40"}}
    backend.mark_as_revoked(job_id, "revoked")
    later = threading.Timer(1.0, backend.store_result, args=(job_id, record, "SUCCESS"))
    later.start()
    try:
        assert producer.job(job_id).result(timeout=30) == record
    finally:
        later.join()
    lone = f"revoked-{uuid.uuid4().hex}"
    backend.mark_as_revoked(lone, "revoked")
    monkeypatch.setattr(client, "REVOKE_GRACE_S", 0.5)
    t0 = time.monotonic()
    got = producer.job(lone).result(timeout=30)
    assert got["status"] == "cancelled" and got["error"] == {"code": "CANCELLED", "message": "job was cancelled"}
    assert 0.4 < time.monotonic() - t0 < 10


def test_unknown_job_status(producer):
    assert producer.job("never-submitted").status() == "unknown"


def test_http_input_transient_errors_retry_then_succeed(producer, settings, worker, webhook_receiver):
    path = sorted((DATA / "rec/wildreceipt_lines/imgs").iterdir())[1]
    webhook_receiver.files["line.jpg"] = path.read_bytes()
    url = f"{webhook_receiver.url}/flaky2/line.jpg?{uuid.uuid4().hex}"
    job = producer.submit(url)
    record = job.result(timeout=60)
    assert record["status"] == "succeeded", record
    gets = [r for r in webhook_receiver.requests if r["path"] == url[len(webhook_receiver.url):]]
    assert len(gets) == 3 and gets[2]["time"] - gets[1]["time"] >= 0.5  # backoff 0.3 s, then 0.6 s
    r = redis.Redis.from_url(settings.redis)
    assert int(r.get(keys.deliveries_key(settings, job.id))) == 3  # two retries, counted apart
    missing = producer.submit(f"{webhook_receiver.url}/files/nothing.png").result(timeout=60)
    assert missing["error"]["code"] == "NOT_FOUND", missing


def test_storage_down_fails_with_storage_unavailable_after_retries(producer, worker, webhook_receiver):
    url = f"{webhook_receiver.url}/flaky99/line.jpg?{uuid.uuid4().hex}"
    record = producer.submit(url).result(timeout=60)
    assert record["status"] == "failed" and record["error"]["code"] == "STORAGE_UNAVAILABLE", record
    assert "storage unavailable" in record["error"]["message"]


def test_any_device_routes_to_shared_queue(producer, worker, inputs):
    assert producer.submit([inputs["lines"][2]], device="any").result(timeout=60)["status"] == "succeeded"
