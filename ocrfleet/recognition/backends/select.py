"""Choosing a backend: by name, the default for the model's format, or (``enable_hpi``)
the fastest one measured on a short warm-up, remembered per (model, device, machine)."""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from ocrfleet.errors import BackendUnavailableError
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.sources import ModelFiles, cache_root


def registry() -> dict[str, type[Backend]]:
    from ocrfleet.recognition.backends.onnxruntime import OnnxRuntimeBackend
    from ocrfleet.recognition.backends.openvino import OpenVinoBackend
    from ocrfleet.recognition.backends.paddle import PaddleBackend

    return {b.name: b for b in (PaddleBackend, OnnxRuntimeBackend, OpenVinoBackend)}


def candidates(files: ModelFiles, opts: EngineOptions) -> list[str]:
    return [n for n, cls in registry().items() if cls.available(files, opts) is None]


def create(name: str, files: ModelFiles, opts: EngineOptions) -> Backend:
    reg = registry()
    if name not in reg:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose from {', '.join(reg)}")
    why = reg[name].available(files, opts)
    if why:
        raise BackendUnavailableError(f"backend {name!r} cannot run {files.name}: {why}")
    return reg[name](files, opts)


# CPU preference when nothing is asked for, fastest first as measured in docs/performance.md
# (every backend gives the official text on the parity set). Paddle-format models run on
# OpenVINO (converted to ONNX once, cached); ONNX models on ONNX Runtime.
CPU_ORDER = {"paddle": ("openvino", "onnxruntime", "paddle"), "onnx": ("onnxruntime", "openvino")}


def default_order(files: ModelFiles, opts: EngineOptions) -> list[str]:
    """Backends to try, in order. GPU: Paddle Inference (TensorRT) for Paddle-format models,
    ONNX Runtime for ONNX. CPU: ``CPU_ORDER``."""
    if opts.device != "cpu":
        order = ("paddle", "onnxruntime") if files.fmt == "paddle" else ("onnxruntime",)
    else:
        order = CPU_ORDER[files.fmt]
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
    raise BackendUnavailableError(f"no backend can run {files.name} on {opts.device}: {'; '.join(errors)}")


def _choice_file() -> str:
    return str(cache_root() / "hpi-choices.json")


def _key(files: ModelFiles, opts: EngineOptions) -> str:
    stat = files.model_file.stat()
    return "|".join([files.name, str(files.model_file), str(stat.st_size), opts.device, opts.precision,
                     str(opts.threads), platform.node(), platform.processor() or platform.machine()])


def fastest(files: ModelFiles, opts: EngineOptions, sample: np.ndarray | None = None) -> tuple[str, Backend]:
    """Measure every available backend once on a warm-up batch; remember the winner."""
    path, key = _choice_file(), _key(files, opts)
    try:
        with open(path, encoding="utf-8") as fh:
            remembered = json.load(fh).get(key)
    except (OSError, ValueError):
        remembered = None
    names = candidates(files, opts)
    if remembered in names:
        return remembered, create(remembered, files, opts)
    best: tuple[str, Backend] | None = None
    best_time = float("inf")
    for name in names:
        try:
            backend = create(name, files, opts)
            elapsed = _probe(backend, files, sample)
        except Exception:  # noqa: BLE001 - a backend that fails here is simply not chosen
            continue
        if elapsed < best_time:
            best, best_time = (name, backend), elapsed
        del backend  # losers are freed before the next one loads
    if best is None:
        raise BackendUnavailableError(f"no backend can run {files.name} on {opts.device}")
    _remember(path, key, best[0])
    return best


def _probe(backend: Backend, files: ModelFiles, sample: np.ndarray | None, repeats: int = 3) -> float:
    """Best-of-``repeats`` time for typical batches: text lines (1 and 8 lines, 320 and 960
    wide), pages for a detector (960 x 736), the model's own input size for a classifier."""
    rng = np.random.default_rng(0)
    if sample is not None:
        shapes = []
    elif files.task == "det" or not files.input_shape:
        shapes = [(1, 3, 960, 736)]
    elif files.task == "rec":
        shapes = [(n, 3, files.input_shape[1], w) for n in (1, 8) for w in (320, 960)]
    else:
        shapes = [(n, *files.input_shape) for n in (1, 8)]
    batches = [sample] if sample is not None else [rng.uniform(-1, 1, size=s).astype(np.float32) for s in shapes]
    for b in batches:
        backend.run(b)  # first calls build kernels / caches
    total = 0.0
    for b in batches:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            backend.run(b)
            runs.append(time.perf_counter() - t0)
        total += min(runs)
    return total


def _remember(path: str, key: str, name: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = {}
    data[key] = name
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)
