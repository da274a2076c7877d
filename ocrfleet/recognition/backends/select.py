"""Choosing a backend: by name, the default for the model's format, or (``enable_hpi``)
the measured default unless a backend is clearly faster here (see ``hpi``)."""
from __future__ import annotations

from ocrfleet.errors import BackendUnavailableError
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.sources import ModelFiles


def registry() -> dict[str, type[Backend]]:
    from ocrfleet.recognition.backends.onnxruntime import OnnxRuntimeBackend
    from ocrfleet.recognition.backends.openvino import OpenVinoBackend
    from ocrfleet.recognition.backends.paddle import PaddleBackend
    from ocrfleet.recognition.backends.torch_backend import TorchBackend

    return {b.name: b for b in (PaddleBackend, OnnxRuntimeBackend, OpenVinoBackend, TorchBackend)}


def candidates(files: ModelFiles, opts: EngineOptions) -> list[str]:
    """The backends ocrfleet chooses among here (high-performance mode measures them): those of
    ``default_order``. Others (torch on the CPU) run only when asked for by name."""
    return default_order(files, opts)


def create(name: str, files: ModelFiles, opts: EngineOptions) -> Backend:
    reg = registry()
    if name not in reg:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose from {', '.join(reg)}")
    why = reg[name].available(files, opts)
    if why:
        raise BackendUnavailableError(f"backend {name!r} cannot run {files.name}: {why}")
    return reg[name](files, opts)


# GPU preference: Paddle Inference (TensorRT when enabled) for Paddle-format models, then ONNX
# Runtime (CUDA / TensorRT providers), then PyTorch CUDA (``[torch]`` extra)
GPU_ORDER = {"paddle": ("paddle", "onnxruntime", "torch"), "onnx": ("onnxruntime", "torch")}
# CPU preference when nothing is asked for, fastest first as measured in docs/performance.md
# (every backend gives the official text on the parity set), by CPU vendor. Paddle-format models
# run on ONNX (converted once, cached; a model paddle2onnx cannot convert, e.g. PP-OCRv4_mobile_det,
# falls through to OpenVINO's own Paddle reader). On AMD hosts (AVX2 and AVX-512, 2026-12-01)
# ONNX Runtime ran 1.2-1.5x OpenVINO's lines/s on lines of 157 distinct widths (OpenVINO is
# ahead only on few repeated shapes: its cost per new input shape) in less memory; on the Intel
# AVX-512/AMX host (2026-11-28) OpenVINO ran 1.4x ONNX Runtime. ``enable_hpi`` measures instead.
CPU_ORDER = {"paddle": ("onnxruntime", "openvino", "paddle"), "onnx": ("onnxruntime", "openvino")}
CPU_ORDER_BY_VENDOR = {"GenuineIntel": {**CPU_ORDER, "paddle": ("openvino", "onnxruntime", "paddle")}}


def default_order(files: ModelFiles, opts: EngineOptions) -> list[str]:
    """Backends to try, in order: ``GPU_ORDER``, or the CPU order for this CPU's vendor, for the
    model's format."""
    if opts.device != "cpu":
        order = GPU_ORDER[files.fmt]
    else:
        from ocrfleet.recognition.devices import cpu_vendor

        order = CPU_ORDER_BY_VENDOR.get(cpu_vendor(), CPU_ORDER)[files.fmt]
    reg = registry()
    return [n for n in order if reg[n].available(files, opts) is None]


def create_default(files: ModelFiles, opts: EngineOptions) -> Backend:
    """The first backend of ``default_order`` that loads (a failed ONNX conversion falls back)."""
    errors = []
    for name in default_order(files, opts):
        try:
            return create(name, files, opts)
        except Exception as exc:  # noqa: BLE001 - try the next engine, report all if none loads
            errors.append(f"{name}: {exc}")
    raise BackendUnavailableError(f"no backend can run {files.name} on {opts.device}: "
                                  f"{'; '.join(errors or unavailable_reasons(files, opts))}")


def unavailable_reasons(files: ModelFiles, opts: EngineOptions) -> list[str]:
    """Why no backend can even try ``files`` on ``opts.device`` (the GPU first: the usual cause)."""
    from ocrfleet.recognition.devices import gpu_count

    reasons = [f"{n}: {why}" for n, cls in registry().items() if (why := cls.available(files, opts))]
    if opts.device != "cpu" and not gpu_count():
        reasons.insert(0, "no NVIDIA GPU is visible to this process (no /dev/nvidia* device, or no CUDA "
                          "build of paddlepaddle/onnxruntime); use device 'cpu' (--device cpu)")
    return reasons


def fastest(files: ModelFiles, opts: EngineOptions, progress=None) -> tuple[str, Backend]:
    """High-performance mode: the measured default unless a probe shows another backend clearly
    faster on this machine (``ocrfleet.recognition.backends.hpi``)."""
    from ocrfleet.recognition.backends import hpi

    return hpi.choose(files, opts, progress=progress)


def choose(files: ModelFiles, opts: EngineOptions, backend: str | None = None, enable_hpi: bool = False,
           progress=None) -> Backend:
    """The backend every module loads: the one named, high-performance mode's, or the default."""
    if backend:
        return create(backend, files, opts)
    if enable_hpi:
        return fastest(files, opts, progress=progress)[1]
    return create_default(files, opts)
