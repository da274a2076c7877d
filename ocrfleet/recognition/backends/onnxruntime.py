"""ONNX Runtime: CPU, or CUDA / TensorRT execution providers when the installed build has them.

``share_cpu_arena(initial_mb)`` (once per process, before the sessions are built; fleet workers
call it at start with the setting ``ort_shared_arena_mb``): every CPU session built afterwards allocates
from ONE process-wide arena (ONNX Runtime's environment allocator, ``session.use_env_allocators``)
whose first chunk is ``initial_mb`` of address space, instead of one arena per session that grows
in power-of-two chunks and never shrinks. The detector's and the recogniser's peaks no longer add
up and the arena is not over-extended: PP-OCRv5 mobile det + rec in a fleet worker after page
jobs at PaddleOCR's detection size 682 -> 520 MB peak RSS, same text (docs/pages.md "Worker
memory"). Only touched pages are resident, so the reserved chunk costs address space, not memory.
"""
from __future__ import annotations

import threading

import numpy as np

from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles, cache_root


_arena_lock = threading.Lock()
_arena_mb = 0  # > 0: CPU sessions share one arena whose first chunk is this many MiB
_arena_registered = False


def share_cpu_arena(initial_mb: int) -> None:
    """From now on every CPU session of this process allocates from one shared arena (first chunk
    ``initial_mb`` MiB, growing in powers of two beyond it), registered with ONNX Runtime when
    the first such session is built (so a process that never builds one never imports it).
    ONNX Runtime keeps the first registration: another size afterwards is a ValueError."""
    global _arena_mb
    if initial_mb <= 0:
        raise ValueError(f"the shared arena's first chunk must be > 0 MiB, not {initial_mb}")
    with _arena_lock:
        if _arena_registered and initial_mb != _arena_mb:
            raise ValueError(f"the shared ONNX Runtime arena is already registered with {_arena_mb} MiB, "
                             f"not {initial_mb}")
        _arena_mb = initial_mb


def shared_cpu_arena_mb() -> int:
    """The shared arena's first chunk in MiB; 0 while each session has its own arena."""
    return _arena_mb


def _use_shared_arena(ort, so) -> None:
    """Point the session options ``so`` at the shared CPU arena, registering it on first use."""
    global _arena_registered
    with _arena_lock:
        if not _arena_registered:
            cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(cpu, ort.OrtArenaCfg({"initial_chunk_size_bytes": _arena_mb << 20}))
            _arena_registered = True
    so.add_session_config_entry("session.use_env_allocators", "1")


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
        if _arena_mb and opts.device == "cpu":
            _use_shared_arena(ort, so)
        # no memory pattern: ONNX Runtime keeps one per input shape, and pages and lines come in
        # ever new sizes, so the patterns only grow the arena (PP-OCRv5 mobile det on 144-dpi pages:
        # 830 -> 550 MB peak; PP-OCRv5 mobile rec on random widths: 7.1 -> 0.1 MB per 10,000 lines,
        # peak 362 -> 299 MB, same speed; docs/performance.md)
        so.enable_mem_pattern = False
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
