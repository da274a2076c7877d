"""What a user sees offline, without a GPU and without Paddle: one clear message each, naming
what to do, no retry noise, no traceback. Each runs the real `ocrfleet` command in a child
process. Paddle's absence is made real for that child by the import system (``sys.modules``
entries of None make ``import paddle`` fail and ``find_spec`` answer None), since uninstalling
it from the shared test venv is not an option."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINE = str(REPO / "tests/data/real/rec/wildreceipt_lines/imgs/1_002.png")
WITHOUT_PADDLE = "import sys; sys.modules.update(paddle=None, paddle2onnx=None); "


def run(args: list[str], tmp_path, prelude: str = "", timeout: float = 240, **env) -> subprocess.CompletedProcess:
    code = prelude + "from ocrfleet.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", "import sys; " + code, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO),
                                                           OCRFLEET_HOME=str(tmp_path / "home"), **env))


@pytest.mark.parametrize("env", [{"OCRFLEET_OFFLINE": "1"},
                                 {"OCRFLEET_HF_BASE_URL": "http://hub.ocrfleet-test.invalid"}])  # never resolves
def test_default_model_not_local_names_the_local_ones(tmp_path, env):
    out = run(["text_recognition", "-i", LINE], tmp_path, **env)  # default model: PP-OCRv5_server_rec
    assert out.returncode == 2 and out.stdout == ""
    assert "'PP-OCRv5_server_rec' are not available" in out.stderr
    assert "--model_name PP-OCRv5_mobile_rec" in out.stderr and "PP-OCRv6_tiny_rec" in out.stderr
    assert "retrying" not in out.stderr and "Traceback" not in out.stderr
    assert ("OCRFLEET_OFFLINE is set" if "OCRFLEET_OFFLINE" in env else "does not resolve") in out.stderr


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="this machine has a GPU")
def test_gpu_without_a_gpu_says_why(tmp_path):
    out = run(["text_recognition", "-i", LINE, "--model_name", "PP-OCRv5_mobile_rec", "--device", "gpu"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no NVIDIA GPU is visible" in out.stderr and "--device cpu" in out.stderr
    # a GPU worker refuses to start rather than failing in every child (a started worker would
    # outlive the timeout: the test fails then)
    worker = run(["worker", "--device", "gpu:0"], tmp_path, timeout=60, OCRFLEET_ALLOW_UNSIGNED_WEBHOOKS="1")
    assert worker.returncode == 2 and "no NVIDIA GPU is visible" in worker.stderr


def test_without_paddle_bundled_models_run_and_paddle_paths_say_how_to_install(tmp_path, v4_official_dir):
    ok = run(["text_recognition", "-i", LINE, "--model_name", "PP-OCRv5_mobile_rec"], tmp_path, WITHOUT_PADDLE)
    assert ok.returncode == 0 and '"rec_text": "' in ok.stdout, ok.stderr
    for backend in ("paddle", "onnxruntime"):  # Paddle Inference itself; the Paddle -> ONNX converter
        out = run(["text_recognition", "-i", LINE, "--model_dir", str(v4_official_dir), "--backend", backend],
                  tmp_path, WITHOUT_PADDLE)
        assert out.returncode == 2 and "pip install 'ocrfleet[paddle]'" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_paddle_import_noise_stays_off_stderr(tmp_path, v4_official_dir):
    out = run(["text_recognition", "-i", LINE, "--model_dir", str(v4_official_dir), "--backend", "paddle"], tmp_path)
    assert out.returncode == 0 and '"rec_text": "' in out.stdout
    assert out.stderr == "", out.stderr  # no ccache warning, no glog lines


def test_enable_hpi_first_probe_shows_progress(tmp_path):
    out = run(["text_recognition", "-i", LINE, "--model_name", "PP-OCRv6_tiny_rec", "--enable_hpi", "True"], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0].startswith("enable_hpi: measuring onnxruntime, openvino for PP-OCRv6_tiny_rec")
    assert "enable_hpi: PP-OCRv6_tiny_rec: loading backend 2/2, openvino" in lines
    assert lines[-1] == "enable_hpi: PP-OCRv6_tiny_rec probe round 5/5"
    again = run(["text_recognition", "-i", LINE, "--model_name", "PP-OCRv6_tiny_rec", "--enable_hpi", "True"], tmp_path)
    assert again.returncode == 0 and again.stderr == ""  # remembered: no probe, nothing said
