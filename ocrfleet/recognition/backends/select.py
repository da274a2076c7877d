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


def default_backend(files: ModelFiles, opts: EngineOptions) -> str:
    """Paddle Inference for Paddle-format models (as PaddleOCR does), ONNX Runtime for ONNX."""
    if files.fmt == "paddle" and registry()["paddle"].available(files, opts) is None:
        return "paddle"
    return "onnxruntime"


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
    if sample is None:
        rng = np.random.default_rng(0)
        sample = rng.uniform(-1, 1, size=(8, 3, files.input_shape[1], 320)).astype(np.float32)
    best = None
    timings = {}
    for name in names:
        try:
            backend = create(name, files, opts)
            backend.run(sample[:1])  # first call builds kernels / caches
            t0 = time.perf_counter()
            for _ in range(2):
                backend.run(sample)
            timings[name] = time.perf_counter() - t0
        except Exception:  # noqa: BLE001 - a backend that fails here is simply not chosen
            continue
        if best is None or timings[name] < timings[best[0]]:
            best = (name, backend)
    if best is None:
        raise BackendUnavailableError(f"no backend can run {files.name} on {opts.device}")
    _remember(path, key, best[0])
    return best


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
