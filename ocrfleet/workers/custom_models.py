"""Custom recognition models on a worker: a location (a ``model_dirs`` setting entry, or a job
spec's ``model_dir``; the rule of where they may be: ``ocrfleet.jobs.model_dirs``) made into a
checked local directory, plus the cache key that changes when the model does.

A job's directory is hostile until checked: under ``allowed_model_roots`` with symlinks resolved,
``inference.onnx`` (+ ``inference.yml``) regular files inside it, at most ``max_model_bytes``, no
other model file that could be picked instead, and no ONNX external data (which could name any
file on the worker). ``s3://bucket/prefix`` locations are fetched (those two objects, size-capped)
into ``$OCRFLEET_HOME/fetched-models/<digest of location + ETags>``, once per version.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections import OrderedDict
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ocrfleet.errors import InputTooLargeError, InvalidInputError, ModelUnavailableError
from ocrfleet.jobs import model_dirs
from ocrfleet.jobs.model_dirs import CONFIG_FILE, MODEL_FILE

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # inference.yml (an 18,000-character dictionary is ~0.2 MB)
_checked: OrderedDict[str, bool] = OrderedDict()  # local job dirs' versions already checked


def prepare(s, name: str, location: str, trusted: bool) -> tuple[str, Path]:
    """(cache key, local directory) of the model at ``location``. ``trusted``: the operator's
    ``model_dirs`` entry (any model directory format, no root check); else a job's ``model_dir``."""
    kind, bucket, path = model_dirs.split(location)
    if kind == "s3":
        if not trusted and not model_dirs.under_roots(s.allowed_model_roots, location):
            raise InvalidInputError(f"model_dir {location!r} is not under allowed_model_roots", input_ref=location)
        version, d = _fetch_s3(s, bucket, path, location)
        return f"{name}@s3://{bucket}/{path}#{version}", d
    real = os.path.realpath(path)
    if not trusted and not model_dirs.under_roots(s.allowed_model_roots, location, resolve=True):
        raise InvalidInputError(f"model_dir {location!r} is not under allowed_model_roots "
                                "(symlinks resolved)", input_ref=location)
    if not os.path.isdir(real):
        raise ModelUnavailableError(f"model_dir {location!r} does not exist or is not a directory")
    stamp = [(f, st.st_mtime_ns, st.st_size, st.st_ino) for f in sorted(os.listdir(real))
             if f.endswith((".onnx", ".yml", ".pdiparams", ".json", ".pdmodel", ".txt"))
             for st in [os.stat(os.path.join(real, f))]]
    key = f"{name}@{real}#{hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]}"
    if not trusted and key not in _checked:  # once per version: parsing the graph costs ~0.1 s
        check_dir(Path(real), s.max_model_bytes, location)
        _checked[key] = True
        while len(_checked) > 256:
            _checked.popitem(last=False)
    return key, Path(real)


def check_dir(d: Path, max_bytes: int, ref: str) -> None:
    """A job's model directory: ONNX + inference.yml, nothing that could be loaded instead."""
    if not d.is_dir():
        raise ModelUnavailableError(f"model_dir {ref!r} does not exist or is not a directory")
    onnx = sorted(p.name for p in d.glob("*.onnx"))
    if onnx != [MODEL_FILE] or (d / "inference.pdiparams").exists():
        raise InvalidInputError(f"model_dir {ref!r} must hold exactly one model, {MODEL_FILE} (found "
                                f"{onnx or 'none'}{', Paddle-format files' if (d / 'inference.pdiparams').exists() else ''}); "
                                "other formats are served through the model_dirs setting", input_ref=ref)
    for fname, limit, setting in ((MODEL_FILE, max_bytes, " (max_model_bytes)"), (CONFIG_FILE, MAX_CONFIG_BYTES, "")):
        p = d / fname
        if not p.exists() and fname == CONFIG_FILE:
            continue
        real = os.path.realpath(p)
        st = os.stat(real)
        if os.path.dirname(real) != str(d) or not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"model_dir {ref!r}: {fname} must be a regular file inside the directory",
                                    input_ref=ref)
        if st.st_size > limit:
            raise InputTooLargeError(f"model_dir {ref!r}: {fname} is {st.st_size} bytes; the limit is "
                                     f"{limit}{setting}", input_ref=ref)
    check_onnx(d / MODEL_FILE, ref)


def check_onnx(path: Path, ref: str) -> None:
    """Parse the graph (no external data loaded) and refuse external-data tensors, anywhere."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the model's, not the worker's
        raise ModelUnavailableError(f"model_dir {ref!r}: {MODEL_FILE} is not a readable ONNX model "
                                    f"({type(exc).__name__}: {str(exc)[:200]})") from None
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        tensors = list(g.initializer)
        for node in g.node:
            for attr in node.attribute:
                tensors.extend([attr.t] if attr.HasField("t") else [])
                tensors.extend(attr.tensors)
                graphs.extend([attr.g] if attr.HasField("g") else [])
                graphs.extend(attr.graphs)
        if any(t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) for t in tensors):
            raise InvalidInputError(f"model_dir {ref!r}: ONNX external data is not allowed (tensors must "
                                    f"be inside {MODEL_FILE})", input_ref=ref)


def _fetch_s3(s, bucket: str, prefix: str, ref: str) -> tuple[str, Path]:
    """(version, directory) of the two objects under ``prefix``, downloaded once per version."""
    from ocrfleet.storage import s3
    from ocrfleet.storage.refs import read_s3_object

    client = s3.client(s)
    heads = {}
    try:
        for fname, limit in ((MODEL_FILE, s.max_model_bytes), (CONFIG_FILE, MAX_CONFIG_BYTES)):
            try:
                head = client.head_object(Bucket=bucket, Key=f"{prefix}/{fname}")
            except ClientError as exc:
                if fname == CONFIG_FILE and s3.error_code(exc) in s3.NOT_FOUND_CODES | {"404"}:
                    continue
                raise
            if head.get("ContentLength", 0) > limit:
                raise InputTooLargeError(f"{ref}/{fname} is {head['ContentLength']} bytes; the limit is {limit}"
                                         + (" (max_model_bytes)" if fname == MODEL_FILE else ""), input_ref=ref)
            heads[fname] = (head.get("ETag", ""), head.get("ContentLength", 0), limit)
        version = hashlib.sha256(repr((bucket, prefix, sorted(heads.items()))).encode()).hexdigest()[:24]
        d = fetch_root(s) / version
        if (d / MODEL_FILE).is_file():
            os.utime(d)  # recently used: pruned last
            return version, d
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=d.parent))
        try:
            for fname, (_, _, limit) in heads.items():
                (tmp / fname).write_bytes(read_s3_object(client, bucket, f"{prefix}/{fname}", limit, ref))
            check_dir(tmp, s.max_model_bytes, ref)
            try:
                os.rename(tmp, d)  # atomic; another process may have won the race: use its copy
            except OSError:
                if not (d / MODEL_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        prune(d.parent, s.model_fetch_keep, keep=d)
        return version, d
    except (ClientError, BotoCoreError) as exc:
        raise s3.classify(exc, ref) from exc


def fetch_root(s) -> Path:
    from ocrfleet.recognition.sources import cache_root

    return Path(s.model_fetch_dir) if s.model_fetch_dir else cache_root() / "fetched-models"


def prune(root: Path, keep_n: int, keep: Path) -> None:
    """Remove all but the ``keep_n`` most recently used fetched versions (never ``keep``); a model
    already loaded from a removed directory keeps running (its files are in memory)."""
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p != keep),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in dirs[max(0, keep_n - 1):]:
        shutil.rmtree(old, ignore_errors=True)
