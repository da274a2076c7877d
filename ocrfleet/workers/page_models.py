"""Detection and textline-orientation models in the worker's ModelCache (page jobs).

``model_kind(name)`` is the catalogue's task of a model name ("rec", "det", "cls"); the cache
keeps up to ``model_cache_size`` models of EACH kind, so a page job's detector never evicts the
recogniser it runs with. ``load(name, settings)`` builds and warms a detector or classifier on
the worker's device, like ``ModelCache._load`` does for recognisers.
"""
from __future__ import annotations

import time

import numpy as np


def model_kind(name: str) -> str:
    from ocrfleet.recognition import catalog

    model = catalog.MODELS.get(name)
    return model.task if model is not None else "rec"


def load(name: str, settings):
    """A warmed ``TextDetection`` or ``TextLineOrientationClassification`` for ``name``;
    MODEL_UNAVAILABLE (an OcrFleetError) when it has no weights here."""
    from ocrfleet.workers.models import engine_options

    opts = engine_options(settings)
    engine = dict(device=settings.worker_device, cpu_threads=opts.cpu_threads,
                  use_tensorrt=opts.use_tensorrt, precision=opts.precision)
    t0 = time.perf_counter()
    if model_kind(name) == "det":
        from ocrfleet.detection import TextDetection

        model = TextDetection(model_name=name, **engine)
        model.detect(np.full((64, 64, 3), 255, np.uint8))  # warm-up
    else:
        from ocrfleet.textline_orientation import TextLineOrientationClassification

        model = TextLineOrientationClassification(model_name=name, **engine)
        model.classify([np.full((48, 160, 3), 255, np.uint8)], batch_size=1)
    model.backend_name = model.backend
    model.load_seconds = model.warm_seconds = time.perf_counter() - t0
    return model
