"""OpenVINO on the CPU (reads ONNX; Paddle-format models are converted once; a legacy
``.pdmodel`` that paddle2onnx cannot convert, e.g. PP-OCRv4_mobile_det, is read directly by
OpenVINO's Paddle front end).

``precision`` "fp32" (default) keeps f32 arithmetic; "bf16" / "fp16" let OpenVINO use AMX /
AVX512-FP16 where the CPU has them: about 2x faster here, at a measured accuracy cost (see
docs/performance.md), so it is opt-in."""
from __future__ import annotations

import numpy as np

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles

SHAPE_CACHE = 32


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
        self.request.infer({0: batch})
        return self.request.get_output_tensor(0).data.copy()
