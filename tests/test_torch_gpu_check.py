"""bench/gpu_prepare.py + bench/gpu_check.py, as the lent GPU machine runs them, but on the CPU
(``--cpu-smoke``; no GPU here): the carried folder is complete and small, the wheel installs
with --no-deps and is what runs, and the check reports parity with the CPU reference."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from conftest import REC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_prepare_then_cpu_smoke_check(tmp_path):
    carry, site, out = tmp_path / "carry", tmp_path / "site", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_prepare.py"), "--out", str(carry), "--lines", str(REC),
                    "--limit", "12", "--models", "PP-OCRv6_tiny_rec"], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    manifest = json.loads((carry / "manifest.json").read_text())
    assert manifest["lines"] == 12 and manifest["bytes"] < 64 * 2**20
    assert len((carry / "reference" / "PP-OCRv6_tiny_rec.tsv").read_text().splitlines()) == 12
    (wheel,) = carry.glob("ocrfleet-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--carry", str(carry),
                           "--out", str(out), "--cpu-smoke"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert Path(report["ocrfleet_from"]).is_relative_to(site)  # the carried wheel ran, not this checkout
    (row,) = report["results"]
    assert report["parity_ok"] and row["text_equal"] == 1.0 and row["max_score_diff"] <= 1e-3
    assert row["e2e_lines_per_s"]["8"] > 0 and row["model_ms_per_call"]["1"] > 0
    assert "| PP-OCRv6_tiny_rec | fp32 | 100.00 % of 12 |" in (out / "gpu_check.md").read_text()


def test_gpu_check_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")], check=True)
