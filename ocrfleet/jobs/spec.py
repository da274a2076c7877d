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
      "tenant": "acme",                            # optional: picks a per-tenant webhook secret
      "visualize": true,                           # optional: one PNG per line (per page) beside the result
      "mode": "auto",                              # optional: auto | page | line (inputs without regions;
                                                   #   also per input); see ocrfleet/tasks/pages.py
      "det_model_name": "PP-OCRv5_mobile_det",     # optional: page jobs' detector
      "model_dir": "s3://models/hand-v2",          # optional: a custom recognition model (ONNX +
                                                   #   inference.yml) under allowed_model_roots;
                                                   #   model_name then names it (jobs/model_dirs.py)
      "use_textline_orientation": false,           # optional: page jobs turn upside-down lines
      "reading_order": "columns",                  # optional: page jobs read multi-column pages
                                                   #   column by column (absent: PaddleOCR's order)
      "submitted_at": 1700000000.0
    }
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from urllib.parse import urlsplit

import jsonschema

SPEC_VERSION = 1
JOB_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MODEL_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
TENANT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_DEPTH = 32  # default nesting limit (Settings.max_spec_depth)


def id_ok(value, pattern: str = JOB_ID_PATTERN) -> bool:
    """A full match of an id pattern: ``$`` alone would accept a trailing newline."""
    return isinstance(value, str) and re.fullmatch(pattern.strip("^$"), value) is not None

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
        "model_name": {"type": "string", "pattern": MODEL_PATTERN},
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
                    "mode": {"enum": ["auto", "page", "line"]},          # page jobs (tasks/pages.py)
                },
            },
        },
        "webhook_url": {"type": ["string", "null"], "maxLength": 2048, "pattern": r"^https?://"},
        "metadata": {"type": ["object", "null"]},
        "visualize": {"type": "boolean"},
        "mode": {"enum": ["auto", "page", "line"]},                      # page jobs (tasks/pages.py)
        "det_model_name": {"type": "string", "pattern": MODEL_PATTERN},
        "model_dir": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": r"^(s3|file)://"},
        "use_textline_orientation": {"type": "boolean"},
        "reading_order": {"enum": ["columns"]},                         # page jobs (ocrfleet.ocr.columns)
        "tenant": {"type": "string", "pattern": TENANT_PATTERN},
        "submitted_at": {"type": "number"},
    },
}

_validator = jsonschema.Draft202012Validator(SCHEMA)


class SpecError(ValueError):
    """The job spec is invalid; nothing was enqueued."""

    code = "INVALID_INPUT"


def depth(value, limit: int) -> int:
    """Nesting depth of a JSON-like value, walked without recursion; stops past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list, tuple)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((item, d + 1) for item in (v.values() if isinstance(v, dict) else v))
    return deepest


def text_depth(raw: bytes | str) -> int:
    """Bracket nesting of JSON text (strings skipped), counted with numpy: safe to call before
    ``json.loads`` (which recurses) on any input."""
    import numpy as np

    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    data = re.sub(rb'"[^"]*"', b'""', re.sub(rb"\\.", b"", data))  # escapes out, then strings
    arr = np.frombuffer(data, np.uint8)
    step = np.zeros(arr.shape, np.int8)
    step[(arr == ord("[")) | (arr == ord("{"))] = 1
    step[(arr == ord("]")) | (arr == ord("}"))] = -1
    return int(np.cumsum(step, dtype=np.int64).max()) if arr.size else 0


def text_too_deep(raw: bytes | str, limit: int) -> bool:
    """``text_depth(raw) > limit``, answered from the bracket count alone when it is small."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    return text_depth(data) > limit


def digest(spec: dict) -> str:
    """What identifies a job's work: the spec without its submit time (idempotency, reuse)."""
    stable = {k: v for k, v in spec.items() if k != "submitted_at"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def host_allowed(allowed, scheme: str, host: str | None, port: int | None) -> bool:
    """``allowed_http_hosts`` entries are ``host`` (ports 80 and 443 only) or ``host:port``."""
    if not host:
        return False
    port = port or (443 if scheme == "https" else 80)
    for entry in allowed:
        name, sep, p = entry.rpartition(":") if not entry.endswith("]") else (entry, "", "")
        if not sep or not p.isdigit():
            name, p = entry, None
        name = name.strip("[]").lower()
        if name == host.lower() and (int(p) == port if p is not None else port in (80, 443)):
            return True
    return False


def file_allowed(roots, path: str, resolve: bool = False) -> str | None:
    """``path`` (normalised; with ``resolve`` symlinks resolved too, as a worker reads it) when it
    is one of ``allowed_file_roots`` or lies under one, else None. The producer checks without
    resolving (the file may live only on the workers), the worker with: one rule, both sides."""
    norm = os.path.realpath if resolve else os.path.normpath
    real = norm(path)
    for root in roots:
        base = norm(root)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    return None


def setting_hint(name: str) -> str:
    """How to change a setting that refused a job: producers and workers both check it."""
    return (f"add it to the {name} setting (OCRFLEET_{name.upper()}); producers and workers "
            "both need it, the producer refuses up front what the workers would refuse")


def url_allowed(allowed, url: str) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return False
    return parts.scheme in ("http", "https") and host_allowed(allowed, parts.scheme, parts.hostname, port)


def validate(spec: dict, max_bytes: int = 256 * 1024, max_inputs: int = 1000,
             max_depth: int = MAX_DEPTH) -> dict:
    """Raise ``SpecError`` with every problem listed, else return ``spec``."""
    if not isinstance(spec, dict):
        raise SpecError(f"job spec must be a JSON object, not {type(spec).__name__}")
    if depth(spec, max_depth) > max_depth:  # before anything recursive (json, jsonschema) sees it
        raise SpecError(f"job spec is nested deeper than {max_depth} levels")
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
    for name, pattern in (("job_id", JOB_ID_PATTERN), ("model_name", MODEL_PATTERN), ("det_model_name", MODEL_PATTERN),
                          ("tenant", TENANT_PATTERN)):
        if name in spec and not id_ok(spec[name], pattern):
            raise SpecError(f"{name}: {spec[name]!r} does not match {pattern}")
    if len(spec["inputs"]) > max_inputs:
        raise SpecError(f"{len(spec['inputs'])} inputs; the limit is {max_inputs}")
    for i, item in enumerate(spec["inputs"]):
        for j, region in enumerate(item.get("regions") or []):
            values = [v for p in region for v in (p if isinstance(p, list) else [p])]
            if not all(math.isfinite(v) for v in values):  # JSON from Python may carry NaN/Infinity
                raise SpecError(f"inputs/{i}/regions/{j}: coordinates must be finite numbers")
        ref = item["ref"]
        if "\x00" in ref or "%00" in ref:
            raise SpecError(f"inputs/{i}: NUL bytes are not allowed in a reference")
        parts = urlsplit(ref)
        if parts.scheme == "s3" and (not parts.netloc or not parts.path.strip("/")):
            raise SpecError(f"inputs/{i}: s3 reference needs s3://bucket/key, got {ref!r}")
        if ".." in ref.split("?")[0].split("/"):
            raise SpecError(f"inputs/{i}: '..' path segments are not allowed: {ref!r}")
    return spec
