"""The finetune job (``jobs/finetune_spec.py``): fetch the labelled lines, run ``ocrfleet.finetune``
on this worker's device, upload the model directory to the spec's ``output`` prefix. The job's
life (redelivery, dead letters, error codes, result object, record, webhook) is the recognition
job's (``tasks.recognize.run_task``).

Every label row is hostile: its image path must be relative, without ``..``; images are fetched
through the same checks as recognition inputs (``storage.refs.fetch``: allowed roots, size caps),
renamed by row number into a private folder, at most ``max_finetune_lines`` rows and
``max_finetune_bytes`` in all. A row whose image is missing is reported and skipped (the
fine-tune refuses the run when too few usable lines remain, as the CLI does)."""
from __future__ import annotations

import posixpath
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from celery import shared_task

from ocrfleet.errors import InputNotFoundError, InputTooLargeError, InvalidInputError
from ocrfleet.jobs import finetune_spec, model_dirs
from ocrfleet.jobs.contract import FINETUNE_TASK, JobFailed
from ocrfleet.jobs.model_dirs import CONFIG_FILE, MODEL_FILE
from ocrfleet.tasks import state
from ocrfleet.tasks.pipeline import JobCancelled
from ocrfleet.tasks.recognize import finished, run_task

UPLOADED = (MODEL_FILE, CONFIG_FILE, "finetune.json")
MAX_PROBLEMS = 50  # skipped rows listed in the result (all are counted)


@shared_task(bind=True, name=FINETUNE_TASK, acks_late=True, max_retries=None, throws=(JobFailed,))
def finetune(self, spec: dict, rejected: dict | None = None) -> dict:
    """A finetune job; its record carries ``model_dir`` (the output prefix) once it succeeded."""
    return finished(run_task(self, spec, rejected, _finetune))


def _finetune(self, s, spec: dict, job_id: str, log) -> dict:
    from ocrfleet.finetune import finetune as run_finetune
    from ocrfleet.finetune.train import FinetuneCancelled
    from ocrfleet.jobs.spec import SpecError

    if not finetune_spec.is_finetune(spec):
        raise SpecError("not a finetune spec (\"kind\": \"finetune\")")
    finetune_spec.validate(spec, s)
    base = model_dirs.named(s).get(spec["model_name"])  # a model_dirs entry: its (fetched) directory
    with tempfile.TemporaryDirectory(prefix=f"finetune-{job_id[:40]}-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        budget = [s.max_finetune_bytes]
        skipped: list[str] = []
        files = {name: _fetch_labels(s, spec[name], tmp / name, budget, skipped)
                 for name in finetune_spec.LABEL_FILES if spec.get(name)}
        train = files["labels"]
        fetch_s = time.perf_counter() - t0
        log.info("finetune.fetched", lines=len(train.read_text(encoding="utf-8").splitlines()),
                 skipped=len(skipped), seconds=round(fetch_s, 2))
        if base is not None:
            from ocrfleet.workers.custom_models import prepare

            base = str(prepare(s, spec["model_name"], base, trusted=True)[1])
        options = {k: spec[k] for k in finetune_spec.OPTIONS if k in spec}
        options.setdefault("max_minutes", finetune_spec.minutes_allowed(s))
        try:
            report = run_finetune(str(train), str(tmp / "out"), model_name=spec["model_name"],
                                  model_dir=base,
                                  val=[str(files["val"])] if "val" in files else [],
                                  keep=[str(files["keep"])] if "keep" in files else [], device=s.worker_device,
                                  threads=max(1, s.cpu_threads), progress=False,
                                  should_stop=lambda: state.is_cancelled(s, job_id), **options)
        except FinetuneCancelled as exc:
            log.info("finetune.cancelled", reason=str(exc))
            raise JobCancelled(str(exc)) from None
        _upload(s, tmp / "out", spec["output"])
    summary = {k: report.get(k) for k in ("labelled_lines", "train_lines", "val_lines", "refused_lines",
                                          "before", "best", "best_epoch", "epochs_run", "stopped_by", "blend",
                                          "width_scale", "wall_seconds", "train_seconds", "peak_rss_mb")}
    summary["skipped_rows"] = len(skipped)
    return {"model_dir": spec["output"], "summary": summary,
            "problems": (skipped + list(report.get("problems") or []))[:MAX_PROBLEMS],
            "history": report.get("history"), "timings": {"fetch_s": round(fetch_s, 3)}}


def _fetch_labels(s, ref: str, folder: Path, budget: list[int], skipped: list[str]) -> Path:
    """A local copy of the label file at ``ref`` and of every image it names (renamed by row)."""
    from ocrfleet.storage.refs import fetch

    raw = fetch(s, ref)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"label file is not UTF-8 text ({exc})", input_ref=ref) from None
    rows = [row for row in text.splitlines() if row.strip()]
    if len(rows) > s.max_finetune_lines:
        raise InputTooLargeError(f"label file lists {len(rows)} lines; the limit is {s.max_finetune_lines} "
                                 "(max_finetune_lines)", input_ref=ref)
    parts = urlsplit(ref)
    base = posixpath.dirname(parts.path)
    folder.mkdir(parents=True)
    out = []
    for no, row in enumerate(rows, 1):
        rel, tab, label = row.partition("\t")
        where = f"{ref}:{no}"
        if not tab or not label.strip():
            out.append(row)  # the fine-tune reports malformed rows itself, one message each
            continue
        if rel.startswith("/") or "://" in rel or ".." in rel.split("/") or "\x00" in rel or "\\" in rel:
            skipped.append(f"{where}: image path {rel[:120]!r} must be relative, without '..'")
            continue
        image_ref = f"{parts.scheme}://{parts.netloc}{posixpath.join(base, rel)}"
        try:
            data = fetch(s, image_ref)
        except (InputNotFoundError, InvalidInputError, InputTooLargeError) as exc:
            skipped.append(f"{where}: {exc}")
            continue
        budget[0] -= len(data)
        if budget[0] < 0:
            raise InputTooLargeError(f"the job's images pass {s.max_finetune_bytes} bytes (max_finetune_bytes)",
                                     input_ref=ref)
        name = f"{no:06d}{posixpath.splitext(rel)[1][:8] or '.png'}"
        (folder / name).write_bytes(data)
        out.append(f"{name}\t{label}")
    labels = folder / "labels.tsv"
    labels.write_text("\n".join(out) + "\n", encoding="utf-8")
    return labels


def _upload(s, out: Path, output: str) -> None:
    """The model directory's files to ``output`` (``s3://bucket/prefix``), the model last: a reader
    that finds ``inference.onnx`` finds the dictionary beside it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ocrfleet.storage import s3

    _, bucket, prefix = model_dirs.split(output)
    client = s3.client(s)
    try:
        for name in sorted(UPLOADED, key=lambda n: n == MODEL_FILE):
            if (out / name).is_file():
                client.upload_file(str(out / name), bucket, f"{prefix}/{name}")
    except (ClientError, BotoCoreError) as exc:
        raise s3.classify(exc, output) from exc
    shutil.rmtree(out, ignore_errors=True)
