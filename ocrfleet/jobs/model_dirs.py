"""Custom recognition models in the fleet (``ocrfleet finetune``'s output, or any model directory):
the one rule for where they may come from, shared by producers and workers.

* The ``model_dirs`` setting: ``NAME=LOCATION`` entries, the operator's own (LOCATION an absolute
  directory or ``s3://bucket/prefix``). Jobs use such a model by ``model_name``; ``worker_models``
  (``ocrfleet worker --models NAME``) loads it in every process at start.
* A job spec's ``model_dir``: ``file:///abs/dir`` or ``s3://bucket/prefix``, under one of the
  ``allowed_model_roots`` (absolute directories or ``s3://bucket/prefix``; empty: refused). The
  spec's ``model_name`` names the model in results, logs and metrics.

A job's ``model_dir`` must hold ``inference.onnx`` + ``inference.yml`` (with the dictionary), as
``ocrfleet finetune`` writes them; ``model_dirs`` entries may be any model directory
(``TextRecognition(model_dir=...)``'s formats). docs/fleet.md "Custom models".
"""
from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from ocrfleet.jobs.spec import MODEL_PATTERN, SpecError, file_allowed, id_ok, setting_hint

MODEL_FILE, CONFIG_FILE = "inference.onnx", "inference.yml"


def split(location: str) -> tuple[str, str, str]:
    """``("file", "", "/abs/dir")`` or ``("s3", bucket, "prefix")`` (no trailing slash); ValueError
    for anything else: relative paths, ``..`` segments, NUL bytes, other schemes, an empty prefix."""
    if not isinstance(location, str) or not location or "\x00" in unquote(location):
        raise ValueError("expected an absolute directory, file:///abs/dir or s3://bucket/prefix")
    parts = urlsplit(location)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// locations name no host: {location!r}")
        path = unquote(parts.path) if parts.scheme else location
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{location!r} is not an absolute path without '..' segments")
        return "file", "", posixpath.normpath(path)
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        if not parts.netloc or not prefix or ".." in prefix.split("/") or parts.query or parts.fragment:
            raise ValueError(f"s3 model locations are s3://bucket/prefix, not {location!r}")
        return "s3", parts.netloc, prefix
    raise ValueError(f"unsupported model location scheme {parts.scheme!r} (file or s3)")


def named(settings) -> dict[str, str]:
    """The ``model_dirs`` setting as {name: location}; ValueError naming a malformed entry."""
    out: dict[str, str] = {}
    for entry in settings.model_dirs:
        name, sep, location = (part.strip() for part in entry.partition("="))
        try:
            if not sep or not id_ok(name, MODEL_PATTERN):
                raise ValueError(f"expected NAME=LOCATION with NAME matching {MODEL_PATTERN}")
            split(location)
        except ValueError as exc:
            raise ValueError(f"model_dirs entry {entry!r}: {exc}") from None
        out[name] = location
    return out


def under_roots(roots, location: str, resolve: bool = False) -> bool:
    """Whether ``location`` lies under one of ``allowed_model_roots`` (local paths with symlinks
    resolved when ``resolve``, as the worker reads them; s3 prefixes by whole path segments)."""
    kind, bucket, path = split(location)
    for root in roots:
        try:
            rkind, rbucket, rpath = split(root)
        except ValueError:
            continue
        if kind == rkind == "file" and file_allowed([rpath], path, resolve=resolve) is not None:
            return True
        if kind == rkind == "s3" and bucket == rbucket and (path == rpath or path.startswith(rpath + "/")):
            return True
    return False


def check_spec(settings, spec: dict) -> None:
    """The producer's and the worker's check of a spec's ``model_dir`` (SpecError), before any
    file or object is read."""
    location = spec.get("model_dir")
    if location is None:
        return
    try:
        split(location)
    except ValueError as exc:
        raise SpecError(f"model_dir: {exc}") from None
    if not under_roots(settings.allowed_model_roots, location):
        raise SpecError(f"model_dir: {location!r} is not under an allowed model root; to allow it, "
                        f"{setting_hint('allowed_model_roots')}")
