"""Fast checks without servers: the job contract (ocrfleet.jobs) and the one-rule helpers the
producer, the workers and the engine share (yes/no values, backoff, file roots, devices,
batch sizes, renamed settings)."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from ocrfleet import envvars, retry
from ocrfleet.config.settings import load_settings, to_env
from ocrfleet.errors import BackendUnavailableError, InvalidInputError
from ocrfleet.jobs import contract, spec
from ocrfleet.recognition import crop, inputs
from ocrfleet.recognition.devices import single_device
from ocrfleet.recognition.engine import check_batch_size


def test_keys_and_uris_are_built_in_one_place():
    s = load_settings(env={}, key_prefix="kp", results_bucket="b", results_prefix="p")
    assert contract.job_key(s, "j1") == "kp:job:j1" and contract.running_key(s, "j1") == "kp:running:j1"
    assert contract.cancel_key(s, "j1") == "kp:cancel:j1" and contract.deliveries_key(s, "j1") == "kp:deliveries:j1"
    assert contract.dead_key(s, "messages") == "kp:dead:messages"
    assert contract.result_uri(s, "j1") == "s3://b/p/j1.json" and contract.visual_uri(s, "j1", 3) == "s3://b/p/j1/3.png"
    from ocrfleet.producer import Producer
    from ocrfleet.storage import results

    assert results.result_uri is contract.result_uri  # the storage layer re-uses them, not a copy
    assert Producer(s).job("j1").result_uri == contract.result_uri(s, "j1")


def test_old_import_paths_are_the_contract_modules():
    import ocrfleet.producer.signing as old_signing
    import ocrfleet.producer.spec as old_spec
    from ocrfleet.jobs import signing
    from ocrfleet.producer import JobStatus, SpecError

    assert old_spec is spec and old_signing is signing and SpecError is spec.SpecError
    assert JobStatus.FAILED == "failed" and json.dumps({"s": JobStatus.FAILED}) == '{"s": "failed"}'


def test_failed_record_survives_celerys_exception_round_trip():
    """What the result backend stores for FAILURE (JSON serializer) comes back as the record."""
    from celery import Celery

    backend = Celery("t", backend="cache+memory://").backend
    record = {"job_id": "j", "status": "failed", "error": {"code": "NOT_FOUND", "message": "s3://b/k: no"}}
    meta = json.loads(json.dumps(backend.prepare_exception(contract.JobFailed(record), "json")))
    assert meta["exc_type"] == "JobFailed" and meta["exc_module"] == "ocrfleet.jobs.contract"
    exc = backend.exception_to_python(meta)
    assert isinstance(exc, contract.JobFailed) and str(exc) == "NOT_FOUND: s3://b/k: no"
    assert contract.record_of("FAILURE", exc) == record == contract.record_of("FAILURE", meta)
    assert contract.record_of("SUCCESS", {"status": "succeeded"}) == {"status": "succeeded"}
    assert contract.record_of("FAILURE", ValueError("x")) is None
    assert [contract.celery_state(s) for s in ("failed", "cancelled", "succeeded")] == ["FAILURE", "REVOKED", "SUCCESS"]


def test_one_yes_no_rule():
    assert [envvars.parse_bool(v) for v in ("1", "TRUE", " yes ", "on", True)] == [True] * 5
    assert [envvars.parse_bool(v) for v in ("0", "false", "No", "off", "", None)] == [False] * 6
    with pytest.raises(ValueError, match="yes/no"):
        envvars.parse_bool("maybe")
    with pytest.raises(ValueError, match="task_events"):
        load_settings(env={"OCRFLEET_TASK_EVENTS": "maybe"})  # settings use the same rule
    assert load_settings(env={"OCRFLEET_TASK_EVENTS": "off"}).task_events is False


def test_one_backoff_rule():
    assert [retry.backoff(a, 2.0, 60.0) for a in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    for _ in range(50):
        assert 0.8 * 30 <= retry.backoff(0, 30.0, 1800.0, jitter=0.2) <= 1.2 * 30


def test_one_file_root_rule(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"x")
    os.symlink("/etc/passwd", root / "link.png")
    roots = [str(root)]
    assert spec.file_allowed(roots, f"{root}/sub/a.png") == f"{root}/sub/a.png"
    assert spec.file_allowed(roots, str(root)) == str(root)
    assert spec.file_allowed(roots, f"{root}-other/a.png") is None  # a prefix is not a parent
    assert spec.file_allowed(roots, f"{root}/../etc/passwd") is None
    assert spec.file_allowed(roots, f"{root}/link.png") == f"{root}/link.png"  # producer: lexical
    assert spec.file_allowed(roots, f"{root}/link.png", resolve=True) is None  # worker: symlinks resolved


def test_one_device_parser_and_batch_size_rule():
    assert single_device("GPU:1") == ("gpu", 1) and single_device("cpu") == ("cpu", 0)
    with pytest.raises(BackendUnavailableError, match="names 2 devices"):
        single_device("gpu:0,1")
    with pytest.raises(BackendUnavailableError):
        single_device("tpu")
    from ocrfleet.workers.models import parse_device

    with pytest.raises(ValueError, match="worker_device"):
        parse_device("gpu:x")
    assert check_batch_size(3) == 3
    for bad in (0, -1, 2.5, "8", True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            check_batch_size(bad)


def test_max_pdf_pages_has_one_default():
    assert load_settings(env={}).max_pdf_pages == envvars.MAX_PDF_PAGES
    if "OCRFLEET_MAX_PDF_PAGES" not in os.environ:
        assert inputs.MAX_PDF_PAGES == envvars.MAX_PDF_PAGES


def test_batcher_setting_renamed_old_name_still_read():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert load_settings(env={"OCRFLEET_BATCH_SIZE": "5"}).batcher_max_lines == 5
    assert any(issubclass(w.category, DeprecationWarning) and "batcher_max_lines" in str(w.message) for w in seen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = load_settings(env={"OCRFLEET_BATCH_SIZE": "5", "OCRFLEET_BATCHER_MAX_LINES": "7"})
    assert both.batcher_max_lines == 7 and both.default_batch_size == 8
    env = to_env(both)
    assert env["OCRFLEET_BATCHER_MAX_LINES"] == "7" and "OCRFLEET_BATCH_SIZE" not in env


def test_degenerate_quad_refused_by_the_engines_cropper():
    img = np.zeros((50, 100, 3), np.uint8)
    with pytest.raises(InvalidInputError, match="no area"):
        crop.crop_region(img, [[0, 0], [50, 10], [100, 20], [75, 15]])  # collinear points


def test_producer_refusals_are_spec_errors():
    from ocrfleet.producer import Producer, SpecError

    p = Producer(load_settings(env={}))
    for kwargs, match in ((dict(regions=7), "regions is malformed"), (dict(regions=[["a", 1, 2, 3]]), "region"),
                          (dict(pages="x"), "pages"), (dict(model_name="PP-OCRv6_tiny_rek"), "did you mean 'PP-OCRv6_tiny_rec'"),
                          (dict(model_name="PP-OCRv5_mobile_det"), "is a det model, not a rec model")):
        with pytest.raises(SpecError, match=match):
            p.build_spec("s3://b/k.png", **kwargs)
    with pytest.raises(SpecError, match="allowed_file_roots.*producers and workers both need it"):
        p.build_spec("file:///data/a.png")
