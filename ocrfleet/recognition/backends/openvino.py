"""OpenVINO on the CPU (reads ONNX; Paddle-format models are converted once; a legacy
``.pdmodel`` that paddle2onnx cannot convert, e.g. PP-OCRv4_mobile_det, is read directly by
OpenVINO's Paddle front end).

``precision`` "fp32" (default) keeps f32 arithmetic; "bf16" / "fp16" let OpenVINO use AMX /
AVX512-FP16 where the CPU has them: about 2x faster here, at a measured accuracy cost (see
docs/performance.md), so it is opt-in."""
from __future__ import annotations

import numpy as np

from ocrfleet import glibc
from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles

SHAPE_CACHE = 32
# most input values one inference gets (8 lines of 48 x 320 x 3): OpenVINO keeps the working
# memory of the largest input it has run for the life of the process, ~27 KB per 48-px column
# for PP-OCRv6_small_rec, so one batch of 8 lines at 3,200 px took a process from 0.19 to
# 0.91 GB for good; bigger batches run in slices (each line is independent: same output)
MAX_INPUT_VALUES = 8 * 3 * 48 * 320
# glibc keeps the working memory OpenVINO frees between inputs of different shapes: over random
# widths a PP-OCRv6_small_rec process crept 186 -> 414 MB in 64 calls, and malloc_trim gave
# back 100 MB of it. Trimmed every 16 calls its RSS swung 349-383 MB (peak 425), every 4 calls
# it sat at 328-332 MB (peak 408) for 3 % more CPU time than every 16 (docs/performance.md)
TRIM_EVERY = 4


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, files: ModelFiles, opts: EngineOptions):
        super().__init__(files, opts)
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(onnx_path(files)))
        except ModelUnavailableError:
            if files.fmt != "paddle" or files.model_file.suffix != ".pdmodel":
                raise
            model = core.read_model(str(files.model_file))
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": opts.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": {"bf16": "bf16", "fp16": "f16"}.get(opts.precision, "f32"),
            # compiled kernels kept per input shape: OpenVINO's default (5000) let a process grow
            # from 0.2 to 1.1 GB over 3,000 lines of random widths; 32 held it at 0.37 GB, and the
            # same run was no slower (bench/memory.py, docs/performance.md)
            "CPU_RUNTIME_CACHE_CAPACITY": SHAPE_CACHE,
        })
        self.request = self.compiled.create_infer_request()
        self._calls = 0

    @classmethod
    def available(cls, files, opts):
        if opts.device != "cpu":
            return "the openvino backend runs on the CPU only"
        import importlib.util

        # found, not imported: importing it costs ~45 MB of RSS in every worker that only
        # considers it (an ONNX model's default order lists it after ONNX Runtime)
        if importlib.util.find_spec("openvino") is None:
            return "openvino is not installed"
        return None

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._calls += 1
        if self._calls % TRIM_EVERY == 0:
            glibc.malloc_trim()
        step = max(1, MAX_INPUT_VALUES // max(1, int(np.prod(batch.shape[1:]))))
        if len(batch) <= step:
            return self._infer(batch)
        return np.concatenate([self._infer(batch[i:i + step]) for i in range(0, len(batch), step)])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch)})
        return self.request.get_output_tensor(0).data.copy()
