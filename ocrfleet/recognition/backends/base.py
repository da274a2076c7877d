"""The one protocol every inference engine implements, and the options they share."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ocrfleet.recognition.sources import ModelFiles


@dataclass(frozen=True)
class EngineOptions:
    device: str = "cpu"  # "cpu" or "gpu"
    device_id: int = 0
    enable_mkldnn: bool = True
    mkldnn_cache_capacity: int = 10
    cpu_threads: int = 10
    use_tensorrt: bool = False
    precision: str = "fp32"

    @property
    def threads(self) -> int:
        """cpu_threads, capped at the cores this process may use (more only oversubscribes)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            cores = os.cpu_count() or 1
        return max(1, min(int(self.cpu_threads), cores))


class Backend:
    """Runs a model: a float32 NCHW batch in, its first output out (recognition: (N, T, classes)
    probabilities; detection: (N, 1, H, W) text probability map; orientation: (N, classes))."""

    name = "base"
    max_batch: int | None = None  # most images one run() accepts (a TensorRT profile's limit)

    def __init__(self, files: ModelFiles, opts: EngineOptions):
        self.files = files
        self.opts = opts

    def run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        raise NotImplementedError

    @classmethod
    def available(cls, files: ModelFiles, opts: EngineOptions) -> str | None:
        """None when this backend can run ``files`` on ``opts.device``, else why not."""
        return None
