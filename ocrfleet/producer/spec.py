"""The job spec: a versioned JSON document, validated with JSON Schema before enqueue and
again by the worker. This module is the contract between producers and workers.

Version 1 (``"spec_version": 1``)::

    {
      "spec_version": 1,
      "job_id": "invoice-42",                      # [A-Za-z0-9._:-]{1,128}; idempotency key
      "model_name": "PP-OCRv5_mobile_rec",
      "batch_size": 8,
      "device": "cpu",                             # cpu | gpu | any
      "priority": 3,                               # 0 (highest) .. 9
      "inputs": [
        {"ref": "s3://bucket/a.png"},              # whole image = one text line
        {"ref": "s3://bucket/doc.pdf", "pages": [0, 2]},
        {"ref": "file:///data/r.jpg",              # regions: boxes [x1,y1,x2,y2] or
         "regions": [[10, 20, 300, 60],            #   4-point quads [[x,y] x4]
                     [[5, 5], [200, 8], [199, 40], [4, 37]]]}
      ],
      "webhook_url": "https://example.com/hook",   # optional
      "metadata": {"any": "json"},                 # optional, echoed into the result
      "visualize": true,                           # optional: one PNG per line beside the result
      "submitted_at": 1700000000.0
    }
"""
from __future__ import annotations

import json
import math
from urllib.parse import urlsplit

import jsonschema

SPEC_VERSION = 1
JOB_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

_point = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_region = {
    "oneOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},   # box
        {"type": "array", "items": {"type": "number"}, "minItems": 8, "maxItems": 8},   # flat quad
        {"type": "array", "items": _point, "minItems": 4, "maxItems": 4},               # quad
    ]
}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://ocrfleet.example/schemas/job-spec-v1.json",
    "title": "ocrfleet job spec v1",
    "type": "object",
    "additionalProperties": False,
    "required": ["spec_version", "job_id", "model_name", "inputs"],
    "properties": {
        "spec_version": {"const": SPEC_VERSION},
        "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
        "model_name": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,100}$"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 256},
        "device": {"enum": ["cpu", "gpu", "any"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "inputs": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["ref"],
                "properties": {
                    "ref": {"type": "string", "minLength": 1, "maxLength": 2048,
                            "pattern": r"^(s3|file|https?)://"},
                    "pages": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0},
                              "uniqueItems": True},
                    "regions": {"type": ["array", "null"], "items": _region},
                },
            },
        },
        "webhook_url": {"type": ["string", "null"], "maxLength": 2048, "pattern": r"^https?://"},
        "metadata": {"type": ["object", "null"]},
        "visualize": {"type": "boolean"},
        "submitted_at": {"type": "number"},
    },
}

_validator = jsonschema.Draft202012Validator(SCHEMA)


class SpecError(ValueError):
    """The job spec is invalid; nothing was enqueued."""

    code = "INVALID_INPUT"


def validate(spec: dict, max_bytes: int = 256 * 1024, max_inputs: int = 1000) -> dict:
    """Raise ``SpecError`` with every problem listed, else return ``spec``."""
    try:
        size = len(json.dumps(spec, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise SpecError(f"job spec is not JSON-serialisable: {exc}") from exc
    if size > max_bytes:
        raise SpecError(f"job spec is {size} bytes; the limit is {max_bytes}")
    errors = sorted(_validator.iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise SpecError("invalid job spec:\n  " + "\n  ".join(lines))
    if len(spec["inputs"]) > max_inputs:
        raise SpecError(f"{len(spec['inputs'])} inputs; the limit is {max_inputs}")
    for i, item in enumerate(spec["inputs"]):
        for j, region in enumerate(item.get("regions") or []):
            values = [v for p in region for v in (p if isinstance(p, list) else [p])]
            if not all(math.isfinite(v) for v in values):  # JSON from Python may carry NaN/Infinity
                raise SpecError(f"inputs/{i}/regions/{j}: coordinates must be finite numbers")
        ref = item["ref"]
        parts = urlsplit(ref)
        if parts.scheme == "s3" and (not parts.netloc or not parts.path.strip("/")):
            raise SpecError(f"inputs/{i}: s3 reference needs s3://bucket/key, got {ref!r}")
        if ".." in ref.split("?")[0].split("/"):
            raise SpecError(f"inputs/{i}: '..' path segments are not allowed: {ref!r}")
    return spec
