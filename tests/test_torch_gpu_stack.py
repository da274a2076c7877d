"""A GPU worker's stack choice (ocrfleet/workers/gpu_stack.py): Paddle+TensorRT, then ONNX Runtime
CUDA/TensorRT, then torch CUDA. This machine has no GPU, so the availability probes are faked
here; the real probes are run too and must say why each stack is unavailable."""
from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from ocrfleet.workers import gpu_stack

ALL = {"paddle": None, "onnxruntime": None, "torch": None}


@pytest.mark.parametrize("probes,chosen", [
    (ALL, "paddle"),
    ({**ALL, "paddle": "no CUDA build"}, "onnxruntime"),
    ({"paddle": "no CUDA build", "onnxruntime": "no CUDAExecutionProvider", "torch": None}, "torch"),
    ({"paddle": "x", "onnxruntime": "y", "torch": "z"}, None),
    ({"torch": None}, "torch"),  # a stack not probed is not chosen
])
def test_choose_takes_the_best_available(probes, chosen):
    assert gpu_stack.choose(probes) == chosen


def test_real_probes_on_this_cpu_machine_explain_themselves():
    probes = gpu_stack.probe()
    assert set(probes) == {"paddle", "onnxruntime", "torch"}
    assert all(isinstance(why, str) and why for why in probes.values()), probes  # no GPU here
    assert gpu_stack.choose(probes) is None


def _metric(stack):
    return REGISTRY.get_sample_value("ocrfleet_gpu_stack", {"stack": stack})


def test_announce_logs_the_choice_and_sets_the_metric(monkeypatch):
    monkeypatch.setattr(gpu_stack, "_announced", None)
    monkeypatch.setitem(gpu_stack.PROBES, "paddle", lambda: "this paddlepaddle build has no CUDA")
    monkeypatch.setitem(gpu_stack.PROBES, "onnxruntime", lambda: 1 / 0)  # a broken install
    monkeypatch.setitem(gpu_stack.PROBES, "torch", lambda: None)
    with capture_logs() as logs:
        assert gpu_stack.announce("gpu:0") == "torch"
        assert gpu_stack.announce("gpu:0") == "torch"  # once per process
    (entry,) = [e for e in logs if e["event"] == "worker.gpu_stack"]
    assert entry["stack"] == "torch" and entry["description"] == "PyTorch CUDA"
    assert "division by zero" in entry["unavailable"]["onnxruntime"]
    assert (_metric("paddle"), _metric("onnxruntime"), _metric("torch")) == (0, 0, 1)


def test_announce_without_any_stack_is_an_error_log(monkeypatch):
    monkeypatch.setattr(gpu_stack, "_announced", None)
    for name in gpu_stack.PROBES:
        monkeypatch.setitem(gpu_stack.PROBES, name, lambda: "not here")
    with capture_logs() as logs:
        assert gpu_stack.announce("gpu:1") is None
    (entry,) = [e for e in logs if e["event"] == "worker.gpu_stack"]
    assert entry["log_level"] == "error" and entry["stack"] is None
    assert _metric("torch") == 0


def test_gpu_worker_options_announce_the_stack(monkeypatch):
    from ocrfleet.config.settings import Settings
    from ocrfleet.workers.models import engine_options

    seen = []
    monkeypatch.setattr(gpu_stack, "announce", lambda device: seen.append(device))
    opts = engine_options(Settings(worker_device="gpu:0", gpu_precision="fp16"))
    assert (opts.device, opts.precision, seen) == ("gpu", "fp16", ["gpu:0"])
    engine_options(Settings(worker_device="cpu"))
    assert seen == ["gpu:0"]  # CPU workers do not probe GPU stacks
