"""Which GPU inference stack a GPU worker uses: the best one this machine has, in order
Paddle Inference (+ TensorRT), ONNX Runtime (CUDA / TensorRT providers), PyTorch CUDA.

The per-model choice is ``select.default_order`` (the same order, limited to what can run the
model's format); this is the worker-level answer, logged once at start and exported as the
``ocrfleet_gpu_stack`` metric so a fleet shows which of its GPU workers run on what.
"""
from __future__ import annotations

from pathlib import Path

# (backend name, what it is), best first
STACKS = (("paddle", "Paddle Inference + TensorRT"), ("onnxruntime", "ONNX Runtime CUDA/TensorRT"),
          ("torch", "PyTorch CUDA"))


def _backend_probe(name: str, fmt: str):
    """The backend's own ``available`` check on GPU 0, for a model of format ``fmt``."""
    def run() -> str | None:
        from ocrfleet.recognition.backends.base import EngineOptions
        from ocrfleet.recognition.backends.select import registry
        from ocrfleet.recognition.sources import ModelFiles

        files = ModelFiles(name="a model", fmt=fmt, model_file=Path("."), params_file=None, characters=[],
                           input_shape=None, source="the GPU stack probe")
        return registry()[name].available(files, EngineOptions(device="gpu"))
    return run


PROBES = {"paddle": _backend_probe("paddle", "paddle"), "onnxruntime": _backend_probe("onnxruntime", "onnx"),
          "torch": _backend_probe("torch", "onnx")}


def probe() -> dict[str, str | None]:
    """Per stack: None when it can run on a GPU here, else why not."""
    out = {}
    for name, _ in STACKS:
        try:
            out[name] = PROBES[name]()
        except Exception as exc:  # noqa: BLE001 - a broken install is "not available", with the reason
            out[name] = f"probe failed: {exc}"
    return out


def choose(probes: dict[str, str | None]) -> str | None:
    """The best available stack, or None when the machine has none."""
    return next((name for name, _ in STACKS if probes.get(name, "not probed") is None), None)


_announced: str | None = None


def announce(device: str) -> str | None:
    """Probe, log the choice (``worker.gpu_stack``) and set the metric; once per process."""
    global _announced
    if _announced is not None:
        return _announced or None
    from ocrfleet.workers import metrics
    from ocrfleet.workers.logs import get_logger

    probes = probe()
    chosen = choose(probes)
    log = get_logger()
    skipped = {n: why for n, why in probes.items() if why is not None}
    if chosen is None:
        log.error("worker.gpu_stack", device=device, stack=None, unavailable=skipped,
                  message="no GPU inference stack is installed; GPU jobs will fail to load models")
    else:
        log.info("worker.gpu_stack", device=device, stack=chosen, description=dict(STACKS)[chosen],
                 unavailable=skipped)
    for name, _ in STACKS:
        metrics.GPU_STACK.labels(name).set(1 if name == chosen else 0)
    _announced = chosen or ""
    return chosen
