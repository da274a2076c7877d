"""ONNX Runtime: CPU, or CUDA / TensorRT execution providers when the installed build has them."""
from __future__ import annotations

import numpy as np

from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles, cache_root


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, files: ModelFiles, opts: EngineOptions):
        super().__init__(files, opts)
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # no busy-waiting threads: they steal cores from other workers on a shared machine
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if files.task == "det":  # pages differ in size: a memory pattern per size only grows the
            so.enable_mem_pattern = False  # arena (PP-OCRv5 mobile det on 144-dpi pages: 830 -> 550 MB peak)
        self.session = ort.InferenceSession(str(onnx_path(files)), so, providers=self._providers(opts))
        self.input_name = self.session.get_inputs()[0].name

    @staticmethod
    def _providers(opts: EngineOptions):
        import onnxruntime as ort

        have = ort.get_available_providers()
        if opts.device == "gpu":
            out = []
            if opts.use_tensorrt and "TensorrtExecutionProvider" in have:
                cache = cache_root() / "trt" / "onnxruntime"  # engines survive restarts (a volume)
                cache.mkdir(parents=True, exist_ok=True)
                out.append(("TensorrtExecutionProvider", {
                    "device_id": opts.device_id, "trt_fp16_enable": opts.precision == "fp16",
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))
            out.append(("CUDAExecutionProvider", {"device_id": opts.device_id}))
            return out + ["CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    @classmethod
    def available(cls, files, opts):
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        if opts.device == "gpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
        return None

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
