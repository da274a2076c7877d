"""ocrfleet sends nothing anywhere: importing it turns ONNX Runtime's telemetry off (its official
Linux wheels otherwise write a device id and an event store under ~/.cache/Microsoft and a .ses
file in $TMPDIR when onnxruntime is imported, and upload to Microsoft). Real onnxruntime and a real
bundled model, in a subprocess with its own HOME and TMPDIR (both inside tmp_path, removed after)."""
from __future__ import annotations

import os
import subprocess
import sys

from ocrfleet.recognition.sources import cache_root

SCRIPT = """
import os, ocrfleet
import numpy as np
from ocrfleet.recognition.api import TextRecognition
rec = TextRecognition(model_name="PP-OCRv6_tiny_rec", cpu_threads=1, backend="onnxruntime")
rec.predict(np.full((48, 160, 3), 255, np.uint8))
print(os.environ.get("ORT_DISABLE_TELEMETRY"))
"""


def test_onnx_runtime_telemetry_is_off(tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), TMPDIR=str(tmp), OCRFLEET_HOME=str(cache_root()))  # the real model cache
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (tmp / ".ses").exists()  # ONNX Runtime's telemetry session file
    assert not (home / ".cache" / "Microsoft").exists()  # its device id and offline event store
    assert out.stdout.split()[-1] == "1"


def test_an_explicit_setting_is_kept():
    """The user's own value wins: ocrfleet does not override an explicit choice."""
    out = subprocess.run([sys.executable, "-c", "import os, ocrfleet; print(os.environ['ORT_DISABLE_TELEMETRY'])"],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, ORT_DISABLE_TELEMETRY="0"))
    assert out.stdout.strip() == "0"
