"""Paddle Inference: oneDNN (MKL-DNN) on the CPU; CUDA with an optional TensorRT subgraph
engine (dynamic shapes from the model's inference.yml, engine cache on disk) on the GPU."""
from __future__ import annotations

import warnings

import numpy as np

from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.sources import ModelFiles, cache_root

INSTALL_PADDLE = "pip install 'ocrfleet[paddle]'"  # Paddle is an extra: Paddle-format models only


def import_paddle():
    """``paddle``, without its import-time "No ccache found" warning on the user's stderr."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    return paddle


# min / opt / max input shapes for the TensorRT subgraph when the yml gives none
DEFAULT_TRT_SHAPES = {"x": [[1, 3, 48, 160], [1, 3, 48, 320], [8, 3, 48, 3200]]}


def trt_shapes(files: ModelFiles) -> dict:
    hpi = ((files.yml or {}).get("Hpi") or {}).get("backend_configs") or {}
    shapes = (hpi.get("paddle_infer") or {}).get("trt_dynamic_shapes")
    if shapes:
        return shapes
    task = getattr(files, "task", "rec")
    if task == "det":  # PaddleOCR's detector profile: any page up to 4000 px a side
        return {"x": [[1, 3, 32, 32], [1, 3, 736, 736], [1, 3, 4000, 4000]]}
    if task != "rec" and getattr(files, "input_shape", None):
        c, h, w = files.input_shape
        return {"x": [[1, c, h, w], [1, c, h, w], [8, c, h, w]]}
    return DEFAULT_TRT_SHAPES


class PaddleBackend(Backend):
    name = "paddle"

    def __init__(self, files: ModelFiles, opts: EngineOptions):
        super().__init__(files, opts)
        inference = import_paddle().inference

        config = inference.Config(str(files.model_file), str(files.params_file))
        if opts.device == "gpu":
            config.enable_use_gpu(256, opts.device_id)
            if opts.use_tensorrt:
                self._enable_tensorrt(config, inference)
        else:
            config.disable_gpu()
            if opts.enable_mkldnn:
                config.enable_mkldnn()
                config.set_mkldnn_cache_capacity(int(opts.mkldnn_cache_capacity))
            config.set_cpu_math_library_num_threads(opts.threads)
        if files.model_file.suffix == ".json":  # PIR program (Paddle 3 export)
            config.enable_new_ir(True)
            config.enable_new_executor(True)
        else:  # legacy .pdmodel program
            config.enable_memory_optim()
        config.switch_ir_optim(True)
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def _enable_tensorrt(self, config, inference):
        precision = (inference.PrecisionType.Half if self.opts.precision == "fp16"
                     else inference.PrecisionType.Float32)
        shapes = trt_shapes(self.files)
        self.max_batch = max(s[2][0] for s in shapes.values())  # the engine splits bigger batches
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=self.max_batch,
                                      min_subgraph_size=3, precision_mode=precision,
                                      use_static=True, use_calib_mode=False)
        config.set_trt_dynamic_shape_info({k: v[0] for k, v in shapes.items()},
                                          {k: v[2] for k, v in shapes.items()},
                                          {k: v[1] for k, v in shapes.items()})
        cache = cache_root() / "trt" / f"{self.files.name}-{self.opts.precision}"
        cache.mkdir(parents=True, exist_ok=True)
        config.set_optim_cache_dir(str(cache))

    @classmethod
    def available(cls, files, opts):
        if files.fmt != "paddle":
            return f"{files.name} from {files.source} is ONNX; Paddle Inference needs a Paddle-format model"
        if opts.device != "gpu":
            import importlib.util

            # found, not imported: importing paddle costs ~240 MB of RSS in every process that
            # only considers it (the CPU default order lists it after ONNX Runtime and OpenVINO)
            if importlib.util.find_spec("paddle") is None:
                return f"paddlepaddle is not installed ({INSTALL_PADDLE})"
            return None
        try:
            paddle = import_paddle()
        except ImportError:
            return f"paddlepaddle is not installed ({INSTALL_PADDLE})"
        if opts.device == "gpu":
            if not paddle.device.is_compiled_with_cuda():
                return "this paddlepaddle build has no CUDA (install paddlepaddle-gpu)"
            if paddle.device.cuda.device_count() <= opts.device_id:
                return f"Paddle sees no CUDA GPU {opts.device_id}"
        return None

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(np.ascontiguousarray(batch))
        self.predictor.run()
        return self.output.copy_to_cpu()
