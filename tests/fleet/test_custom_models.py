"""Custom recognition models in the fleet (issue 14: a fine-tuned model directory served by
workers): the ``model_dirs`` setting, a job spec's ``model_dir`` under ``allowed_model_roots``
(local or s3://, the real S3 server), and every hostile directory failing its job alone.

The custom model is PP-OCRv6_tiny_rec's own graph written as ``ocrfleet finetune`` writes a model
(``finetune.export.write_model_dir``) with every dictionary entry case-swapped: its text is the
stock model's text case-swapped, so a test can tell which model read a line."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from ocrfleet.config.settings import Settings
from ocrfleet.errors import OcrFleetError
from ocrfleet.jobs import model_dirs
from ocrfleet.jobs.spec import SpecError
from ocrfleet.storage.results import read_result
from ocrfleet.workers.models import ModelCache

from .conftest import DATA, MODEL, MODELS_ROOT

pytestmark = pytest.mark.timeout(180)
LINE = DATA / "rec" / "wildreceipt_lines" / "imgs" / "1_002.png"


def swapped(text: str) -> str:
    return "".join(c.swapcase() for c in text)


def write_swapped_model(out: Path) -> Path:
    from ocrfleet.finetune.export import write_model_dir
    from ocrfleet.recognition.sources import resolve

    stock = resolve(MODEL)
    write_model_dir(out, onnx.load(str(stock.model_file)), MODEL, [swapped(c) for c in stock.characters],
                    stock.input_shape, {"test": "case-swapped dictionary"})
    return out


@pytest.fixture(scope="module")
def stock_text():
    return read(ModelCache(Settings()).get(MODEL))


@pytest.fixture()
def roots(tmp_path):
    allowed = tmp_path / "models"
    allowed.mkdir()
    return allowed, tmp_path / "elsewhere"


def cache_for(allowed: Path, **kw) -> ModelCache:
    return ModelCache(Settings(allowed_model_roots=[str(allowed)], **kw))


def read(rec) -> str:
    return rec.recognize([cv2.imread(str(LINE))], batch_size=1)[0][0]


def test_location_rule():
    assert model_dirs.split("file:///m/a/") == ("file", "", "/m/a")
    assert model_dirs.split("/m/a") == ("file", "", "/m/a")
    assert model_dirs.split("s3://b/p/q/") == ("s3", "b", "p/q")
    for bad in ("m/a", "file://host/m", "/m/../etc", "s3://b", "s3://b/", "s3://b/p/../q", "http://x/m",
                "/m/a\x00b", "file:///m/a%00", "", "s3://b/p?versionId=1"):
        with pytest.raises(ValueError):
            model_dirs.split(bad)
    roots = ["/srv/models", "s3://models/ok"]
    assert model_dirs.under_roots(roots, "file:///srv/models/hand")
    assert not model_dirs.under_roots(roots, "file:///srv/models-evil/hand")
    assert model_dirs.under_roots(roots, "s3://models/ok/hand")
    assert not model_dirs.under_roots(roots, "s3://models/okay/hand")  # whole path segments only
    assert not model_dirs.under_roots(roots, "s3://other/ok/hand")
    assert model_dirs.named(Settings(model_dirs=["hand=/srv/models/hand", "b=s3://m/p"])) == {
        "hand": "/srv/models/hand", "b": "s3://m/p"}
    for bad in (["noequals"], ["bad name=/x"], ["h=relative/dir"], ["h=ftp://x/y"]):
        with pytest.raises(ValueError, match="model_dirs entry"):
            model_dirs.named(Settings(model_dirs=bad))


def test_producer_checks_model_dir_and_named_models(settings):
    from ocrfleet.producer import Producer

    p = Producer(settings.replace(allowed_model_roots=["/srv/models", "s3://models/ok"],
                                  model_dirs=["hand-v1=/srv/models/hand"]))
    ok = p.build_spec("s3://inputs/a.png", model_name="my-hand", model_dir="s3://models/ok/hand")
    assert ok["model_dir"] == "s3://models/ok/hand" and ok["model_name"] == "my-hand"
    assert p.build_spec("s3://inputs/a.png", model_name="hand-v1")["model_name"] == "hand-v1"
    with pytest.raises(SpecError, match="allowed_model_roots"):
        p.build_spec("s3://inputs/a.png", model_name="x", model_dir="s3://models/okay/hand")
    with pytest.raises(SpecError, match="allowed_model_roots"):
        p.build_spec("s3://inputs/a.png", model_name="x", model_dir="file:///etc")
    with pytest.raises(SpecError, match="'..'"):
        p.build_spec("s3://inputs/a.png", model_name="x", model_dir="file:///srv/models/../../etc")
    with pytest.raises(SpecError, match="model_dir"):  # schema: file or s3 only
        p.build_spec("s3://inputs/a.png", model_name="x", model_dir="https://evil.example/m")
    with pytest.raises(SpecError, match="did you mean 'hand-v1'"):
        p.build_spec("s3://inputs/a.png", model_name="hand-v2")


def test_job_model_dir_loads_and_reloads_when_it_changes(roots, stock_text):
    allowed, _ = roots
    d = write_swapped_model(allowed / "hand")
    cache = cache_for(allowed)
    rec = cache.get("my-hand", f"file://{d}")
    assert read(rec) == swapped(stock_text) != stock_text  # the directory's dictionary, not the stock one
    assert cache.get("my-hand", f"file://{d}") is rec
    assert read(cache.get(MODEL)) == stock_text  # the catalogue model of the same graph is another entry
    os.utime(d / "inference.onnx", ns=(1, 1))  # the model was replaced in place: loaded again
    assert cache.get("my-hand", f"file://{d}") is not rec


def test_named_model_dirs_setting(roots, stock_text):
    allowed, _ = roots
    d = write_swapped_model(allowed / "hand")
    cache = ModelCache(Settings(model_dirs=[f"hand-v1={d}"]))  # the operator's: no root check
    assert read(cache.get("hand-v1")) == swapped(stock_text)
    from ocrfleet.workers.app import check_model_locations

    with pytest.raises(ValueError, match="allowed_model_roots entry"):
        check_model_locations(Settings(allowed_model_roots=["relative/dir"]))


def _external_data(d: Path) -> None:
    """One weight tensor says its bytes live in /etc/passwd (the proto edited by hand: onnx.save
    would try to write that file)."""
    model = onnx.load(str(d / "inference.onnx"))
    t = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../../../../../etc/passwd")
    (d / "inference.onnx").write_bytes(model.SerializeToString())


def _symlinked_file(d: Path) -> None:
    target = d.parent.parent / "elsewhere" / "real.onnx"
    target.parent.mkdir(exist_ok=True)
    shutil.move(d / "inference.onnx", target)
    (d / "inference.onnx").symlink_to(target)


def _not_a_recogniser(d: Path) -> None:
    from ocrfleet.recognition.sources import resolve

    shutil.copy(resolve("PP-OCRv6_tiny_det", task="det").model_file, d / "inference.onnx")


HOSTILE = {  # name -> (how the directory is spoiled, error code)
    "corrupt onnx": (lambda d: (d / "inference.onnx").write_bytes(b"\x08\x07garbage" * 100), "MODEL_UNAVAILABLE"),
    "external data": (_external_data, "INVALID_INPUT"),
    "model file symlinked outside": (_symlinked_file, "INVALID_INPUT"),
    "second onnx file": (lambda d: shutil.copy(d / "inference.onnx", d / "a.onnx"), "INVALID_INPUT"),
    "paddle files beside": (lambda d: (d / "inference.pdiparams").write_bytes(b"x"), "INVALID_INPUT"),
    "no dictionary": (lambda d: (d / "inference.yml").write_text("Global: {model_name: x}\n"), "MODEL_UNAVAILABLE"),
    "a detector, not a recogniser": (_not_a_recogniser, "MODEL_UNAVAILABLE"),
    "missing directory": (lambda d: shutil.rmtree(d), "MODEL_UNAVAILABLE"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_dirs_fail_with_a_code(roots, case):
    allowed, _ = roots
    spoil, code = HOSTILE[case]
    d = write_swapped_model(allowed / "hand")
    spoil(d)
    with pytest.raises(OcrFleetError) as err:
        cache_for(allowed).get("my-hand", f"file://{d}")
    assert err.value.code == code, err.value


def test_outside_roots_and_size_limit(roots):
    allowed, elsewhere = roots
    outside = write_swapped_model(elsewhere / "hand")
    (allowed / "link").symlink_to(outside)  # under the root by name, outside once resolved
    for location in (f"file://{outside}", f"file://{allowed}/link"):
        with pytest.raises(OcrFleetError, match="allowed_model_roots") as err:
            cache_for(allowed).get("my-hand", location)
        assert err.value.code == "INVALID_INPUT"
    d = write_swapped_model(allowed / "big")
    with pytest.raises(OcrFleetError, match="max_model_bytes") as err:
        cache_for(allowed, max_model_bytes=1000).get("my-hand", f"file://{d}")
    assert err.value.code == "TOO_LARGE"


def test_s3_model_dir_fetched_once_per_version(s3_server, tmp_path, stock_text):
    d = write_swapped_model(tmp_path / "hand")
    c = s3_server.client()
    for f in ("inference.onnx", "inference.yml"):
        c.put_object(Bucket="models", Key=f"ok/s3hand/{f}", Body=(d / f).read_bytes())
    s = Settings(s3_endpoint_url=s3_server.endpoint, s3_access_key=s3_server.ak, s3_secret_key=s3_server.sk,
                 allowed_model_roots=["s3://models/ok"], model_fetch_dir=str(tmp_path / "fetched"))
    cache = ModelCache(s)
    rec = cache.get("my-hand", "s3://models/ok/s3hand")
    assert read(rec) == swapped(stock_text)
    assert len(list((tmp_path / "fetched").iterdir())) == 1
    assert cache.get("my-hand", "s3://models/ok/s3hand/") is rec  # same version: no second fetch
    c.put_object(Bucket="models", Key="ok/s3hand/inference.yml", Body=(d / "inference.yml").read_bytes() + b"\n")
    assert cache.get("my-hand", "s3://models/ok/s3hand") is not rec  # a new ETag: a new version
    assert len(list((tmp_path / "fetched").iterdir())) == 2
    for location, settings, code in (("s3://models/ok/nothing-here", s, "NOT_FOUND"),
                                     ("s3://models/ok/s3hand", s.replace(max_model_bytes=1000), "TOO_LARGE"),
                                     ("s3://models/elsewhere/s3hand", s, "INVALID_INPUT")):
        with pytest.raises(OcrFleetError) as err:
            ModelCache(settings).get("my-hand", location)
        assert err.value.code == code, (location, err.value)


def test_fleet_job_with_model_dir_and_bad_ones_harm_nothing(producer, settings, worker, s3_server, tmp_path, stock_text):
    d = write_swapped_model(tmp_path / "hand")
    c = s3_server.client()
    for f in ("inference.onnx", "inference.yml"):
        c.put_object(Bucket="models", Key=f"{MODELS_ROOT}/fleet-hand/{f}", Body=(d / f).read_bytes())
    c.put_object(Bucket="models", Key=f"{MODELS_ROOT}/broken/inference.onnx", Body=b"not an onnx model")
    c.put_object(Bucket="inputs", Key="custom/line.png", Body=LINE.read_bytes())
    ref = "s3://inputs/custom/line.png"

    bad = producer.submit(ref, model_name="broken", model_dir=f"s3://models/{MODELS_ROOT}/broken")
    good = producer.submit(ref, model_name="my-hand", model_dir=f"s3://models/{MODELS_ROOT}/fleet-hand")
    stock = producer.submit(ref)
    bad_record = bad.result(timeout=90)
    assert bad_record["status"] == "failed" and bad_record["error"]["code"] == "MODEL_UNAVAILABLE", bad_record
    assert good.result(timeout=90)["status"] == "succeeded"
    assert stock.result(timeout=90)["status"] == "succeeded"
    result = read_result(settings, good.id)
    assert result["model"] == "my-hand" and result["model_dir"] == f"s3://models/{MODELS_ROOT}/fleet-hand"
    assert result["items"][0]["rec_text"] == swapped(stock_text)
    assert read_result(settings, stock.id)["items"][0]["rec_text"] == stock_text


# -- finetune jobs: trained on a worker, written to S3, served by model_dir -------------------

@pytest.fixture(scope="module")
def finetune_worker(settings, producer):
    import uuid

    from ocrfleet.config.settings import to_env
    from ocrfleet.testing.servers import Worker

    w = Worker(to_env(settings), name=f"ft{uuid.uuid4().hex[:6]}", concurrency=1, extra=["--finetune"]).start(producer.app)
    yield w
    w.stop()


def test_finetune_job_trains_uploads_and_the_fleet_serves_it(producer, settings, worker, finetune_worker, s3_server):
    pytest.importorskip("torch")
    c = s3_server.client()
    rows = [r for r in (DATA / "rec" / "wildreceipt_lines" / "labels.tsv").read_text().splitlines() if r.strip()]
    train, val = [], []
    keep = []
    for i, row in enumerate(rows[:10]):
        rel, label = row.split("\t", 1)
        c.put_object(Bucket="inputs", Key=f"ft/imgs/{i}.png", Body=(LINE.parent.parent / rel).read_bytes())
        (train if i < 6 else val if i < 8 else keep).append(f"imgs/{i}.png\t{label}")
    train += ["../imgs/0.png\tescape", "imgs/missing.png\tgone"]  # each skipped, with its reason
    c.put_object(Bucket="inputs", Key="ft/train.tsv", Body="\n".join(train).encode())
    c.put_object(Bucket="inputs", Key="ft/val.tsv", Body="\n".join(val).encode())
    c.put_object(Bucket="inputs", Key="ft/keep.tsv", Body="\n".join(keep).encode())
    output = f"s3://models/{MODELS_ROOT}/ft-{os.getpid()}"

    with pytest.raises(SpecError, match="allowed_model_roots"):
        producer.submit_finetune("s3://inputs/ft/train.tsv", "s3://models/elsewhere/x", model_name=MODEL)
    with pytest.raises(SpecError, match="max_minutes"):
        producer.submit_finetune("s3://inputs/ft/train.tsv", output, model_name=MODEL, max_minutes=10_000)
    missing = producer.submit_finetune("s3://inputs/ft/nope.tsv", output, model_name=MODEL)
    with pytest.raises(TypeError, match="pickle"):
        producer.submit_finetune("s3://inputs/ft/train.tsv", output, model_name=MODEL, pickle=1)
    job = producer.submit_finetune("s3://inputs/ft/train.tsv", output, model_name=MODEL, val="s3://inputs/ft/val.tsv",
                                   keep="s3://inputs/ft/keep.tsv", max_forgetting=100, backbone_lr_scale=0,
                                   epochs=1, batch_size=3, width_scale=1)
    assert missing.result(timeout=120)["error"]["code"] == "NOT_FOUND"
    record = job.result(timeout=170)
    assert record["status"] == "succeeded", record
    assert record["model_dir"] == output
    summary = record["summary"]
    assert summary["train_lines"] == 6 and summary["val_lines"] == 2 and summary["skipped_rows"] == 2, summary
    assert summary["epochs_run"] == 1 and summary["stopped_by"] == "epochs" and summary["width_scale"] == 1.0
    assert summary["blend"]["keep_lines"] == 2 and summary["blend"]["alpha"] == 1.0, summary  # keep lines fetched
    problems = read_result(settings, job.id)["problems"]
    assert any("'..'" in p for p in problems) and any("missing.png" in p for p in problems), problems
    listed = {o["Key"] for o in c.list_objects_v2(Bucket="models", Prefix=output.split("/", 3)[3])["Contents"]}
    assert {f"{output.split('/', 3)[3]}/{f}" for f in ("inference.onnx", "inference.yml", "finetune.json")} <= listed

    served = producer.submit("s3://inputs/ft/imgs/7.png", model_name="ft-test", model_dir=output)
    assert served.result(timeout=90)["status"] == "succeeded"
    assert read_result(settings, served.id)["model_dir"] == output


def test_finetune_spec_refusals():
    from ocrfleet.jobs import finetune_spec

    s = Settings(allowed_model_roots=["s3://models/ok"], task_soft_time_limit=1500)
    good = {"spec_version": 1, "job_id": "ft-1", "kind": "finetune", "model_name": MODEL,
            "labels": "s3://data/train.tsv", "output": "s3://models/ok/hand"}
    assert finetune_spec.validate(dict(good), s)
    assert finetune_spec.minutes_allowed(s) == 22  # (1500 - 180) / 60
    DEEP = [1]
    for _ in range(40):
        DEEP = [DEEP]
    bad = {
        "labels over http": {"labels": "https://x/t.tsv"}, "'..' in labels": {"labels": "s3://data/../t.tsv"},
        "NUL in labels": {"labels": "file:///d/t%00.tsv"}, "output on local disk": {"output": "file:///models/ok/h"},
        "output outside the roots": {"output": "s3://models/okay/h"}, "epochs 0": {"epochs": 0},
        "lr 2": {"lr": 2}, "batch 10000": {"batch_size": 10_000}, "unknown key": {"pickle": "x"},
        "too long": {"max_minutes": 60}, "not finetune": {"kind": "recognize"},
        "bad job id": {"job_id": "a\nb"}, "deep metadata": {"metadata": {"a": DEEP}},
        "'..' in keep": {"keep": "s3://data/../k.tsv"}, "keep over http": {"keep": "http://x/k.tsv"},
        "max_forgetting 101": {"max_forgetting": 101}, "backbone_lr_scale 2": {"backbone_lr_scale": 2},
        "augment -1": {"augment": -1}, "patience 0": {"patience": 0}, "patience 1.5": {"patience": 1.5},
        "width_scale 10": {"width_scale": 10}, "width_scale 0.1": {"width_scale": 0.1},
        "width_scale 'wide'": {"width_scale": "wide"}, "width_scale true": {"width_scale": True},
    }
    assert finetune_spec.validate({**good, "keep": "s3://data/keep.tsv", "max_forgetting": 0.5,
                                   "backbone_lr_scale": 0, "augment": 0.5, "patience": 3, "width_scale": 1.5}, s)
    assert finetune_spec.validate({**good, "width_scale": "auto"}, s)
    for case, change in bad.items():
        with pytest.raises(SpecError):
            finetune_spec.validate({**good, **change}, s)
    for not_a_dict in (None, [good], "spec"):
        with pytest.raises(SpecError):
            finetune_spec.validate(not_a_dict, s)


def test_finetune_label_rows_are_hostile_until_checked(s3_server, tmp_path):
    """tasks/finetune.py's fetch of a label file and its images, row by row: unsafe paths and
    missing images are skipped with a reason, the caps refuse the whole job (TOO_LARGE), a label
    file that is not UTF-8 is INVALID_INPUT; the images land under private row-numbered names."""
    from ocrfleet.tasks.finetune import _fetch_labels

    c = s3_server.client()
    c.put_object(Bucket="inputs", Key="hostile/imgs/ok.png", Body=LINE.read_bytes())
    c.put_object(Bucket="inputs", Key="hostile/big.png", Body=b"\x89PNG" + b"0" * 5000)
    rows = ["imgs/ok.png\tSTORE", "/etc/passwd\tabs", "../hostile/imgs/ok.png\tup", "s3://other/x.png\turl",
            "imgs\\..\\ok.png\tbackslash", "imgs/missing.png\tgone", "no tab here", "imgs/ok.png\t"]
    c.put_object(Bucket="inputs", Key="hostile/labels.tsv", Body="\n".join(rows).encode())
    s = Settings(s3_endpoint_url=s3_server.endpoint, s3_access_key=s3_server.ak, s3_secret_key=s3_server.sk)
    skipped: list[str] = []
    labels = _fetch_labels(s, "s3://inputs/hostile/labels.tsv", tmp_path / "a", [10 ** 9], skipped)
    kept = labels.read_text().splitlines()
    assert kept[0] == "000001.png\tSTORE" and (tmp_path / "a" / "000001.png").read_bytes() == LINE.read_bytes()
    assert kept[1:] == ["no tab here", "imgs/ok.png\t"]  # malformed rows: the fine-tune reports each itself
    assert [p.split(": ", 1)[0] for p in skipped] == [f"s3://inputs/hostile/labels.tsv:{n}" for n in (2, 3, 4, 5, 6)]
    assert sum("must be relative" in p for p in skipped) == 4 and "missing.png" in skipped[-1]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["000001.png", "labels.tsv"]

    c.put_object(Bucket="inputs", Key="hostile/many.tsv", Body="\n".join(["imgs/ok.png\tx"] * 30).encode())
    c.put_object(Bucket="inputs", Key="hostile/heavy.tsv", Body=b"big.png\tx\nbig.png\ty\n")
    c.put_object(Bucket="inputs", Key="hostile/latin1.tsv", Body="caf\xe9.png\tcaf\xe9".encode("latin-1"))
    for ref, settings, budget, code in (("s3://inputs/hostile/many.tsv", s.replace(max_finetune_lines=20), 10 ** 9, "TOO_LARGE"),
                                        ("s3://inputs/hostile/heavy.tsv", s, 8000, "TOO_LARGE"),
                                        ("s3://inputs/hostile/latin1.tsv", s, 10 ** 9, "INVALID_INPUT")):
        with pytest.raises(OcrFleetError) as err:
            _fetch_labels(settings, ref, tmp_path / ref.rsplit("/", 1)[1], [budget], [])
        assert err.value.code == code, (ref, err.value)


def test_finetune_job_cancelled_while_training(producer, settings, finetune_worker, s3_server):
    """A cancel reaches a running fine-tune (its cancel flag is asked every few steps): the job
    ends cancelled, and nothing is uploaded."""
    pytest.importorskip("torch")
    import time

    c = s3_server.client()
    rows = [r for r in (DATA / "rec" / "wildreceipt_lines" / "labels.tsv").read_text().splitlines() if r.strip()]
    train = []
    for i, row in enumerate(rows[:12]):
        rel, label = row.split("\t", 1)
        c.put_object(Bucket="inputs", Key=f"ftc/imgs/{i}.png", Body=(LINE.parent.parent / rel).read_bytes())
        train.append(f"imgs/{i}.png\t{label}")
    c.put_object(Bucket="inputs", Key="ftc/train.tsv", Body="\n".join(train).encode())
    c.put_object(Bucket="models", Key="ftc-marker", Body=b"")  # the bucket exists, whatever ran before
    output = f"s3://models/{MODELS_ROOT}/ftc-{os.getpid()}"
    job = producer.submit_finetune("s3://inputs/ftc/train.tsv", output, model_name=MODEL, epochs=200, batch_size=2)
    queued = producer.submit_finetune("s3://inputs/ftc/train.tsv", output, model_name=MODEL, epochs=200)
    deadline = time.monotonic() + 60
    while job.status() != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(6)  # fetch, model load and the first steps
    queued.cancel()  # -c 1: still waiting behind the first
    job.cancel()

    record = job.result(timeout=60)  # Celery's REVOKED comes first: result() waits for the job's own record
    assert record["status"] == "cancelled" and "stopped on request" in record["error"]["message"], record
    assert queued.result(timeout=60)["error"]["message"] == "job was cancelled before it ran"

    def stored_result(j):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                return read_result(settings, j.id)
            except Exception:  # noqa: BLE001 - not written yet
                time.sleep(0.5)
        raise AssertionError(f"no result object for {j.id}")

    stored = stored_result(job)
    assert stored["status"] == "cancelled" and "stopped on request" in stored["error"]["message"]  # mid-training
    assert stored_result(queued)["error"]["message"] == "job was cancelled before it ran"  # finalized by the parent
    assert "Contents" not in c.list_objects_v2(Bucket="models", Prefix=output.split("/", 3)[3])
