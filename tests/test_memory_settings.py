"""Worker memory settings: ONNX Runtime's shared CPU arena (``share_cpu_arena``, the worker
setting ``ort_shared_arena_mb``; docs/pages.md "Worker memory").

ONNX Runtime keeps an environment allocator for the life of the process, so each check runs in
a child process of its own (real models, real pages); the memory it saves is measured by
bench/ort_arena.py and bench/fleet_pages.py, not here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, PDF
from ocrfleet.recognition.backends.onnxruntime import share_cpu_arena

ROOT = Path(__file__).resolve().parents[1]
RECEIPT = sorted((DATA / "real" / "receipts" / "wildreceipt").glob("*.jpeg"))[0]

# the session config entry of a model's ONNX Runtime session ("" when unset)
ENTRY = """
def entry(model):
    impl = getattr(model, "backend_impl", None) or model.backend
    try:
        return impl.session.get_session_options().get_session_config_entry("session.use_env_allocators")
    except RuntimeError:
        return ""
"""


def run_child(code: str, **env) -> dict:
    proc = subprocess.run([sys.executable, "-c", ENTRY + code], capture_output=True, text=True, timeout=600,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT), **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_shared_arena_gives_the_same_boxes_text_and_angles():
    """det, textline classifier and rec built on the shared arena find the same boxes, angles and
    text on a receipt photo and a PDF page as the same models with an arena each."""
    code = f"""
import json
import numpy as np
from ocrfleet.detection import TextDetection
from ocrfleet.ocr.geometry import crop_line, sort_boxes
from ocrfleet.recognition.backends import onnxruntime as ortb
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.engine import Recognizer
from ocrfleet.recognition.inputs import decode_image_bytes, render_pdf_bytes
from ocrfleet.recognition.sources import resolve
from ocrfleet.textline_orientation import TextLineOrientationClassification

path = {str(RECEIPT)!r}
pages = [decode_image_bytes(open(path, "rb").read(), path)]
pages.append(next(iter(render_pdf_bytes(open({str(PDF / "text.pdf")!r}, "rb").read(), "text.pdf")))[1])

def build():
    return (TextDetection(model_name="PP-OCRv5_mobile_det", cpu_threads=1, backend="onnxruntime"),
            TextLineOrientationClassification(model_name="PP-LCNet_x1_0_textline_ori", cpu_threads=1,
                                              backend="onnxruntime"),
            Recognizer(resolve("PP-OCRv5_mobile_rec"), EngineOptions(cpu_threads=1), backend="onnxruntime"))

def read(models):
    det, cls, rec = models
    out = []
    for page in pages:
        polys, _ = det.detect(page)
        crops = [c for c in (crop_line(page, p) for p in sort_boxes(polys)) if c is not None]
        out.append({{"polys": np.asarray(polys).tolist(), "angles": [a for a, _ in cls.classify(crops)],
                     "texts": [t for t, _ in rec.recognize(crops, batch_size=8)]}})
    return out

own = build()
ortb.share_cpu_arena(64)
shared = build()
print(json.dumps({{"own": read(own), "shared": read(shared), "arena_mb": ortb.shared_cpu_arena_mb(),
                  "entries_own": [entry(m) for m in own], "entries_shared": [entry(m) for m in shared]}}))
"""
    out = run_child(code)
    assert out["arena_mb"] == 64
    assert out["entries_own"] == ["", "", ""] and out["entries_shared"] == ["1", "1", "1"]
    assert sum(len(page["texts"]) for page in out["own"]) > 20  # real pages, real lines
    assert out["shared"] == out["own"]


@pytest.mark.parametrize("mb", [64, 0])
def test_worker_process_applies_ort_shared_arena_mb(mb):
    """The worker's process start (``worker_process_init``) applies the setting before its models
    load: with ``ort_shared_arena_mb`` > 0 the detector and recogniser of its ModelCache share the
    arena; with 0 each keeps its own."""
    code = """
import json
from ocrfleet.recognition.backends.onnxruntime import shared_cpu_arena_mb
from ocrfleet.workers import app
from ocrfleet.workers.models import get_cache
app._on_process_init()
cache = get_cache(app.settings)
models = [cache.get("PP-OCRv5_mobile_rec"), cache.get("PP-OCRv5_mobile_det")]
print(json.dumps({"mb": shared_cpu_arena_mb(), "backends": [m.backend_name for m in models],
                  "entries": [entry(m) for m in models]}))
"""
    out = run_child(code, OCRFLEET_ORT_SHARED_ARENA_MB=str(mb), OCRFLEET_WORKER_MODELS="",
                    OCRFLEET_WORKER_DEVICE="cpu")
    assert out["backends"] == ["onnxruntime", "onnxruntime"]
    assert out["mb"] == mb
    assert out["entries"] == (["1", "1"] if mb else ["", ""])


def test_share_cpu_arena_refuses_a_size_of_zero_or_less():
    with pytest.raises(ValueError, match="must be > 0 MiB"):
        share_cpu_arena(0)
    with pytest.raises(ValueError, match="must be > 0 MiB"):
        share_cpu_arena(-5)


def test_a_second_size_after_registration_is_refused():
    code = """
import json
import numpy as np
from ocrfleet.recognition.backends import onnxruntime as ortb
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.engine import Recognizer
from ocrfleet.recognition.sources import resolve
ortb.share_cpu_arena(32)
ortb.share_cpu_arena(64)  # not registered yet: the last size wins
Recognizer(resolve("PP-OCRv5_mobile_rec"), EngineOptions(cpu_threads=1), backend="onnxruntime")
ortb.share_cpu_arena(64)  # the registered size again: fine
try:
    ortb.share_cpu_arena(128)
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"mb": ortb.shared_cpu_arena_mb(), "error": error}))
"""
    out = run_child(code)
    assert out["mb"] == 64
    assert "already registered with 64 MiB, not 128" in out["error"]


def test_no_memory_pattern_for_any_task():
    """ONNX Runtime keeps a memory pattern per input shape; lines and pages come in ever new shapes,
    so every session is built without one (PP-OCRv5 mobile rec: 7.1 -> 0.1 MB per 10,000 random
    lines; docs/performance.md). Checked on the session options ONNX Runtime reports back."""
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.backends.onnxruntime import OnnxRuntimeBackend
    from ocrfleet.recognition.sources import resolve

    for name, task in (("PP-OCRv6_tiny_rec", "rec"), ("PP-OCRv6_tiny_det", "det"),
                       ("PP-LCNet_x1_0_textline_ori", "cls")):
        backend = OnnxRuntimeBackend(resolve(name, task=task), EngineOptions(cpu_threads=1))
        assert backend.session.get_session_options().enable_mem_pattern is False, name
