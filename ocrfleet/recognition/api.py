"""TextRecognition: the PaddleOCR 3.x ``TextRecognition`` API (same names, defaults and
results), on ocrfleet's engine."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from ocrfleet.errors import OcrFleetError
from ocrfleet.recognition import sources
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.devices import parse_device
from ocrfleet.recognition.engine import Recognizer, check_batch_size, check_line
from ocrfleet.recognition.inputs import Item, windows
from ocrfleet.recognition.result import TextRecResult

ON_ERROR = ("raise", "skip")


class TextRecognition:
    """Recognise cropped text-line images.

    Arguments are PaddleOCR's (``model_name=None`` means ``PP-OCRv5_server_rec``).
    ``cpu_threads`` is an upper bound: ocrfleet never starts more compute threads than the
    process has cores. Extra keyword-only options: ``backend`` ("paddle", "onnxruntime",
    "openvino"; default on the CPU: OpenVINO for Paddle-format models, converted to ONNX once,
    and ONNX Runtime for ONNX models; on the GPU: Paddle Inference for Paddle-format models;
    ``enable_hpi=True`` measures the available ones and keeps the fastest) and ``on_error`` ("raise", the
    default, or "skip": a bad item in a list is logged, recorded in ``self.errors`` and the
    rest go on), and ``pack`` (how lines are grouped into batches, see
    ``ocrfleet.recognition.engine``: "exact" — the default — gives the same text at every
    batch size; "sorted" trades that for fewer model calls; "paddleocr" batches as PaddleOCR).
    """

    def __init__(self, model_name: str | None = None, model_dir: str | None = None,
                 device: str | None = None, enable_hpi: bool = False, use_tensorrt: bool = False,
                 precision: str = "fp32", enable_mkldnn: bool = True, mkldnn_cache_capacity: int = 10,
                 cpu_threads: int = 10, input_shape=None, *, backend: str | None = None,
                 on_error: str = "raise", pack: str = "exact"):
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be 'fp32', 'fp16' or 'bf16', not {precision!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}")
        self.files = sources.resolve(model_name, model_dir, input_shape)
        self.model_name = self.files.name
        self.on_error = on_error
        self.pack = pack
        self.errors: list[OcrFleetError] = []
        self.recognizers = [
            Recognizer(self.files, EngineOptions(
                device=kind, device_id=dev_id, enable_mkldnn=enable_mkldnn,
                mkldnn_cache_capacity=mkldnn_cache_capacity, cpu_threads=cpu_threads,
                use_tensorrt=use_tensorrt, precision=precision), backend=backend, enable_hpi=enable_hpi)
            for kind, dev_id in parse_device(device)
        ]

    @property
    def backend(self) -> str:
        return self.recognizers[0].backend_name

    def predict(self, input, batch_size: int = 1, **kwargs) -> list[TextRecResult]:
        return list(self.predict_iter(input, batch_size=batch_size, **kwargs))

    def predict_iter(self, input, batch_size: int = 1, on_error: str | None = None
                     ) -> Iterator[TextRecResult]:
        check_batch_size(batch_size)
        size = batch_size * 8 * len(self.recognizers)
        count = 0
        for window in windows(input, check_line, size, on_error or self.on_error, self.errors):
            yield from self._run(window, batch_size, count)
            count += len(window)

    def _run(self, items: list[Item], batch_size: int, offset: int) -> Iterator[TextRecResult]:
        images = [it.image for it in items]  # checked by windows(..., check_line, ...)
        n = len(self.recognizers)
        if n == 1:
            outs = self.recognizers[0].recognize(images, batch_size, self.pack, checked=True)
        else:  # several devices: split the window, run the parts in parallel
            parts = [images[i::n] for i in range(n)]
            with ThreadPoolExecutor(n) as pool:
                done = list(pool.map(lambda rp: rp[0].recognize(rp[1], batch_size, self.pack, checked=True),
                                     zip(self.recognizers, parts)))
            outs = [None] * len(images)
            for i in range(n):
                outs[i::n] = done[i]
        for k, (it, (text, score)) in enumerate(zip(items, outs)):
            yield TextRecResult(it.input_path, it.page_index, text, score, image=it.image, index=offset + k)

    __call__ = predict_iter
