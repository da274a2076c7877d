"""The finetune job spec (version 1): train a recognition model on labelled lines stored in S3
(or under ``allowed_file_roots``) and write the model directory to S3, where recognition jobs
load it as their ``model_dir`` (``jobs/model_dirs.py``). Run by ``tasks/finetune.py`` on the
``ocr.finetune`` queue (``ocrfleet worker --finetune``)::

    {
      "spec_version": 1,
      "job_id": "hand-v3",
      "kind": "finetune",
      "model_name": "PP-OCRv5_mobile_rec",        # the model to start from (catalogue or model_dirs)
      "labels": "s3://data/hand/train.tsv",        # rel_path<TAB>text rows, paths relative to the file
      "val": "s3://data/hand/val.tsv",             # optional: else 10 % held out by path hash
      "keep": "s3://data/printed/lines.tsv",       # optional: lines to keep reading (blend back, max_forgetting)
      "output": "s3://models/team-a/hand-v3",      # under allowed_model_roots
      "epochs": 6, "max_minutes": 18, "batch_size": 8, "lr": 0.0005,   # optional, as ocrfleet finetune's
      "backbone_lr_scale": 0.1, "augment": 1.0, "patience": 6, "max_forgetting": 1.0,   # options
      "width_scale": "auto",                       # or a number in [0.5, 3]
      "webhook_url": "https://example.com/hook", "metadata": {}, "tenant": "acme",   # optional
      "priority": 3, "submitted_at": 1700000000.0
    }
"""
from __future__ import annotations

from urllib.parse import urlsplit

import jsonschema

from ocrfleet.jobs import model_dirs
from ocrfleet.recognition.sources import MAX_SCALE, MIN_SCALE
from ocrfleet.jobs.spec import (JOB_ID_PATTERN, MAX_DEPTH, MODEL_PATTERN, SPEC_VERSION, TENANT_PATTERN, SpecError,
                                depth, id_ok, setting_hint)

KIND = "finetune"
LABEL_FILES = ("labels", "val", "keep")  # label files the task fetches (with the images they name)
OPTIONS = ("epochs", "max_minutes", "batch_size", "lr", "backbone_lr_scale", "augment", "patience",
           "max_forgetting", "width_scale")  # passed to ocrfleet.finetune as they are
TIME_MARGIN_S = 180  # downloads, export and upload, beside the training time itself
_ref = {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": r"^(s3|file)://"}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://ocrfleet.example/schemas/finetune-spec-v1.json",
    "type": "object",
    "additionalProperties": False,
    "required": ["spec_version", "job_id", "kind", "model_name", "labels", "output"],
    "properties": {
        "spec_version": {"const": SPEC_VERSION},
        "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
        "kind": {"const": KIND},
        "model_name": {"type": "string", "pattern": MODEL_PATTERN},
        "labels": _ref,
        "val": _ref,
        "keep": _ref,
        "output": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": r"^s3://"},
        "epochs": {"type": "integer", "minimum": 1, "maximum": 200},
        "max_minutes": {"type": "number", "exclusiveMinimum": 0},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 64},
        "lr": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "backbone_lr_scale": {"type": "number", "minimum": 0, "maximum": 1},
        "augment": {"type": "number", "minimum": 0, "maximum": 2},
        "patience": {"type": "integer", "minimum": 1, "maximum": 200},
        "max_forgetting": {"type": "number", "minimum": 0, "maximum": 100},
        "width_scale": {"oneOf": [{"const": "auto"}, {"type": "number", "minimum": MIN_SCALE, "maximum": MAX_SCALE}]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "webhook_url": {"type": ["string", "null"], "maxLength": 2048, "pattern": r"^https?://"},
        "metadata": {"type": ["object", "null"]},
        "tenant": {"type": "string", "pattern": TENANT_PATTERN},
        "submitted_at": {"type": "number"},
    },
}
_validator = jsonschema.Draft202012Validator(SCHEMA)


def is_finetune(spec) -> bool:
    return isinstance(spec, dict) and spec.get("kind") == KIND


def minutes_allowed(s) -> float:
    """The longest training a job may ask for: the task's soft time limit less the margin."""
    return max(1.0, (s.task_soft_time_limit - TIME_MARGIN_S) / 60)


def validate(spec: dict, s) -> dict:
    """Raise ``SpecError`` naming every problem (the producer before enqueue, the worker again)."""
    if not isinstance(spec, dict):
        raise SpecError(f"finetune spec must be a JSON object, not {type(spec).__name__}")
    if depth(spec, MAX_DEPTH) > min(MAX_DEPTH, s.max_spec_depth):
        raise SpecError(f"finetune spec is nested deeper than {s.max_spec_depth} levels")
    errors = sorted(_validator.iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise SpecError("invalid finetune spec:\n  " + "\n  ".join(lines))
    for name, pattern in (("job_id", JOB_ID_PATTERN), ("model_name", MODEL_PATTERN), ("tenant", TENANT_PATTERN)):
        if name in spec and not id_ok(spec[name], pattern):
            raise SpecError(f"{name}: {spec[name]!r} does not match {pattern}")
    for name in LABEL_FILES:
        ref = spec.get(name)
        if ref is not None and ("\x00" in ref or "%00" in ref or ".." in urlsplit(ref).path.split("/")):
            raise SpecError(f"{name}: NUL bytes and '..' segments are not allowed: {ref!r}")
    try:
        model_dirs.split(spec["output"])
    except ValueError as exc:
        raise SpecError(f"output: {exc}") from None
    if not model_dirs.under_roots(s.allowed_model_roots, spec["output"]):
        raise SpecError(f"output: {spec['output']!r} is not under an allowed model root (recognition jobs "
                        f"load it from there); to allow it, {setting_hint('allowed_model_roots')}")
    limit = minutes_allowed(s)
    if spec.get("max_minutes", 0) > limit:
        raise SpecError(f"max_minutes: {spec['max_minutes']} is over the {limit:.0f} minutes the task time "
                        f"limit leaves (task_soft_time_limit {s.task_soft_time_limit} s less "
                        f"{TIME_MARGIN_S} s); raise task_soft_time_limit (and task_time_limit) on finetune workers")
    return spec
