"""Per-process predictor cache: models are loaded after fork, warmed up, kept in an LRU."""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

import numpy as np

from ocrfleet.config.settings import Settings
from ocrfleet.errors import ModelUnavailableError, OcrFleetError


def parse_device(device: str) -> tuple[str, int]:
    """The one (kind, id) a worker serves: "cpu", "gpu", "gpu:1" (the engine's parser,
    ``recognition.devices.single_device``); ValueError for anything else."""
    from ocrfleet.recognition.devices import single_device

    try:
        return single_device(device)
    except OcrFleetError as exc:
        raise ValueError(f"worker_device: {exc}") from exc


class ModelCache:
    def __init__(self, settings: Settings, on_load=None):
        self.settings = settings
        self.capacity = max(1, settings.model_cache_size)
        self._models: OrderedDict[str, tuple[str, object]] = OrderedDict()  # key -> (kind, model)
        self._lock = threading.Lock()
        self.on_load = on_load  # callback(name, recognizer)

    def get(self, name: str, model_dir: str | None = None):
        """The model ``name``: a recogniser, or a detector / textline classifier (page_models.py).
        A recogniser named in the ``model_dirs`` setting, or any with a job's ``model_dir``, is
        loaded from that directory (workers/custom_models.py), cached by location and version."""
        from ocrfleet.jobs import model_dirs
        from ocrfleet.workers.page_models import model_kind

        location = model_dir if model_dir is not None else model_dirs.named(self.settings).get(name)
        key, path = name, None
        if location is not None:
            from ocrfleet.workers.custom_models import prepare

            key, path = prepare(self.settings, name, location, trusted=model_dir is None)
        kind = "rec" if path is not None else model_kind(name)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][1]
        rec = self._load(name, path, label="custom" if model_dir is not None else name)
        with self._lock:
            self._models[key] = (kind, rec)
            self._models.move_to_end(key)
            same = [k for k, (kd, _) in self._models.items() if kd == kind]  # capacity per kind
            for old in same[:max(0, len(same) - self.capacity)]:
                del self._models[old]
        return rec

    def _load(self, name: str, path=None, label: str | None = None):
        """``label``: the model's name in metrics (``custom`` for a job's own ``model_dir``)."""
        from ocrfleet.recognition.engine import Recognizer
        from ocrfleet.workers.page_models import load, model_kind

        if path is None and model_kind(name) != "rec":
            model = load(name, self.settings)
            from ocrfleet.workers.logs import get_logger

            get_logger(pid=os.getpid()).info("model.loaded", model=name, backend=model.backend_name,
                                             warm_s=round(model.warm_seconds, 3), device=self.settings.worker_device)
            if self.on_load:
                self.on_load(name, model)
            return model
        from ocrfleet.recognition.sources import from_dir, resolve

        t0 = time.perf_counter()
        opts = engine_options(self.settings)
        files = resolve(name) if path is None else from_dir(path, name, source=f"model_dir:{path}")
        try:
            rec = Recognizer(files, opts)
            rec.recognize([np.full((48, 160, 3), 255, np.uint8)], batch_size=1)  # warm-up
        except OcrFleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - a custom model that does not load fails its job only
            if path is None:
                raise
            raise ModelUnavailableError(f"model {name!r} in {str(path)!r} does not load or run: "
                                        f"{type(exc).__name__}: {str(exc)[:300]}") from None
        rec.warm_seconds = time.perf_counter() - t0
        from ocrfleet.workers.logs import get_logger

        get_logger(pid=os.getpid()).info("model.loaded", model=name, backend=rec.backend_name,
                                         load_s=round(rec.load_seconds, 3), warm_s=round(rec.warm_seconds, 3),
                                         device=opts.device, tensorrt=opts.use_tensorrt, precision=opts.precision,
                                         **({"model_dir": str(path)} if path is not None else {}))
        if self.on_load:
            self.on_load(label or name, rec)
        return rec


def engine_options(s: Settings):
    """The worker's engine options: its device; on a GPU, TensorRT at ``gpu_precision`` unless
    ``gpu_tensorrt`` is off (a backend that cannot build the engine falls through to the next
    in ``select.default_order``, e.g. ONNX Runtime on CUDA)."""
    from ocrfleet.recognition.backends.base import EngineOptions

    kind, index = parse_device(s.worker_device)
    if s.gpu_precision not in ("fp16", "fp32"):
        raise ValueError(f"gpu_precision must be 'fp16' or 'fp32', not {s.gpu_precision!r}")
    gpu = kind == "gpu"
    if gpu:  # log and export which GPU stack this worker has (once per process)
        from ocrfleet.workers.gpu_stack import announce

        announce(s.worker_device)
    return EngineOptions(device=kind, device_id=index, cpu_threads=s.cpu_threads,
                         use_tensorrt=gpu and s.gpu_tensorrt, precision=s.gpu_precision if gpu else "fp32")


_cache: ModelCache | None = None


def get_cache(settings: Settings) -> ModelCache:
    global _cache
    if _cache is None:
        from ocrfleet.workers import metrics

        _cache = ModelCache(settings, on_load=metrics.record_model_load)
    return _cache


def reset_cache() -> None:
    """Drop the cache (after fork, the parent's copy must not be used)."""
    global _cache
    _cache = None
