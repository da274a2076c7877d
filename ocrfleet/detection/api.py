"""TextDetection: PaddleOCR 3.x's ``TextDetection`` module (DB detector) on ocrfleet's backends.

Same arguments, defaults and result dicts as the official module. ``None`` settings take the
model's inference.yml, then PaddleOCR's defaults: ``limit_side_len`` 960 and ``limit_type``
"max" for the PP-OCRv3..v6 detectors (736 / "min" for others), ``thresh`` 0.3, ``box_thresh``
0.6, ``unclip_ratio`` 2.0 unless the yml sets them (the official PP-OCR detectors' ymls say
1.5; PP-OCRv6 0.2 / 0.4-0.45 / 1.4), ``max_side_limit`` 4000. As in PaddleOCR, a setting of 0
counts as "not set".

The pipeline calls the raw methods::

    det = TextDetection(model_name="PP-OCRv5_mobile_det", device="cpu", cpu_threads=2)
    polys, scores = det.detect(img_bgr)      # (N, 4, 2) int16, clockwise from top-left; [float] * N
    pairs = det.detect_batch([img1, img2])   # [(polys, scores), ...]

Both take per-call ``limit_side_len``, ``limit_type``, ``thresh``, ``box_thresh``,
``unclip_ratio``, ``max_side_limit``. A blank or all-black page gives zero boxes (shape
(0, 4, 2)); a page over ``OCRFLEET_MAX_PIXELS`` raises ``InputTooLargeError`` (TOO_LARGE);
anything that is not an image raises ``InvalidInputError`` (INVALID_INPUT).
"""
from __future__ import annotations

import ast
import threading
from typing import Iterator

import cv2
import numpy as np

from ocrfleet.detection import margins, postprocess, preprocess
from ocrfleet.detection.result import TextDetResult
from ocrfleet.errors import InputTooLargeError, InvalidInputError, OcrFleetError
from ocrfleet.recognition import inputs, sources
from ocrfleet.recognition.backends import select
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.engine import check_array
from ocrfleet.recognition.devices import parse_device
from ocrfleet.recognition.inputs import Item, windows
from ocrfleet.recognition.preprocess import to_bgr

ON_ERROR = ("raise", "skip")
# PaddleX's _TEXT_DET_MAX_LIMIT_MODELS: these default to limit 960 / "max", others 736 / "min"
MAX_LIMIT_MODELS = {f"PP-OCRv{v}_{s}_det" for v in (3, 4, 5) for s in ("server", "mobile")} | {
    f"PP-OCRv6_{s}_det" for s in ("tiny", "small", "medium")}


def _ops(yml: dict | None) -> dict:
    out = {}
    for op in ((yml or {}).get("PreProcess") or {}).get("transform_ops") or []:
        if isinstance(op, dict) and op:
            key = next(iter(op))
            out[key] = op[key] or {}
    return out


def _number(v, default):
    if v is None:
        return default
    if isinstance(v, str):  # "1./255." as in the official ymls
        return float(eval(compile(ast.parse(v, mode="eval"), "<yml>", "eval"), {"__builtins__": {}}))  # noqa: S307
    return v


def check_page(img, name: str = "array") -> np.ndarray:
    """Validate a page image and return it as uint8 BGR."""
    check_array(img, name)
    h, w = img.shape[:2]
    if h * w > inputs.MAX_PIXELS:
        raise InputTooLargeError(f"image of {w}x{h} pixels is over the {inputs.MAX_PIXELS}-pixel limit "
                                 "(OCRFLEET_MAX_PIXELS)", input_ref=name)
    return to_bgr(img)


class TextDetection:
    """Detect text lines on page images; arguments and results as PaddleOCR's ``TextDetection``.

    ``model_name=None`` means ``PP-OCRv5_server_det`` (PaddleOCR 3.0's default; 3.7 moved to
    PP-OCRv6_medium_det). Extra keyword-only options, as for ``TextRecognition``: ``backend``
    ("paddle", "onnxruntime", "openvino") and ``on_error`` ("raise" or "skip"). Several
    devices (``gpu:0,1``) are not split for detection: the first one is used.
    """

    def __init__(self, model_name: str | None = None, model_dir: str | None = None, device: str | None = None,
                 enable_hpi: bool = False, use_tensorrt: bool = False, precision: str = "fp32",
                 enable_mkldnn: bool = True, mkldnn_cache_capacity: int = 10, cpu_threads: int = 10,
                 input_shape=None, limit_side_len: int | None = None, limit_type: str | None = None,
                 thresh: float | None = None, box_thresh: float | None = None, unclip_ratio: float | None = None,
                 max_side_limit: int = 4000, *, backend: str | None = None, on_error: str = "raise"):
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be 'fp32', 'fp16' or 'bf16', not {precision!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}")
        if limit_type is not None and limit_type not in preprocess.LIMIT_TYPES:
            raise ValueError(f"limit_type must be one of {preprocess.LIMIT_TYPES}, not {limit_type!r}")
        self.files = sources.resolve(model_name, model_dir, None, task="det")
        self.model_name = self.files.name
        self.on_error = on_error
        self.errors: list[OcrFleetError] = []
        self.input_shape = tuple(int(v) for v in input_shape) if input_shape is not None else None
        self._configure(limit_side_len, limit_type, thresh, box_thresh, unclip_ratio, max_side_limit)
        kind, dev_id = parse_device(device)[0]
        opts = EngineOptions(device=kind, device_id=dev_id, enable_mkldnn=enable_mkldnn,
                             mkldnn_cache_capacity=mkldnn_cache_capacity, cpu_threads=cpu_threads,
                             use_tensorrt=use_tensorrt, precision=precision)
        self.backend_impl = select.choose(self.files, opts, backend, enable_hpi)
        self._lock = threading.Lock()

    def _configure(self, limit_side_len, limit_type, thresh, box_thresh, unclip_ratio, max_side_limit):
        ops = _ops(self.files.yml)
        resize = ops.get("DetResizeForTest", {})
        if self.model_name in MAX_LIMIT_MODELS:
            default_len, default_type = resize.get("resize_long", 960), "max"
        else:
            default_len, default_type = resize.get("resize_long", 736), "min"
        self.limit_side_len = limit_side_len or default_len
        self.limit_type = limit_type or default_type
        self.image_shape = resize.get("image_shape")
        self.keep_ratio = bool(resize.get("keep_ratio", False))
        self.max_side_limit = max_side_limit
        norm = ops.get("NormalizeImage", {})
        self.mean = norm.get("mean", [0.485, 0.456, 0.406])
        self.std = norm.get("std", [0.229, 0.224, 0.225])
        self.scale = _number(norm.get("scale"), 1 / 255)
        self.rgb = (ops.get("DecodeImage", {}).get("img_mode", "BGR") == "RGB")
        post = (self.files.yml or {}).get("PostProcess") or {}
        if post.get("name", "DBPostProcess") != "DBPostProcess":
            raise InvalidInputError(f"{self.model_name}: unsupported post-process {post.get('name')!r}")
        if post.get("box_type", "quad") != "quad":
            raise InvalidInputError(f"{self.model_name}: only quadrilateral boxes (box_type 'quad') are supported")
        self.thresh = thresh or post.get("thresh", 0.3)
        self.box_thresh = box_thresh or post.get("box_thresh", 0.6)
        self.unclip_ratio = unclip_ratio or post.get("unclip_ratio", 2.0)
        self.max_candidates = int(post.get("max_candidates", 1000))
        self.use_dilation = bool(post.get("use_dilation", False))
        self.score_mode = post.get("score_mode", "fast")

    @property
    def backend(self) -> str:
        return self.backend_impl.name

    # ------------------------------------------------------------------ raw API (the pipeline)

    def detect(self, image: np.ndarray, **overrides) -> tuple[np.ndarray, list[float]]:
        """Boxes of one BGR (or gray / BGRA) page: ((N, 4, 2) int16, N scores)."""
        return self.detect_batch([image], **overrides)[0]

    def detect_batch(self, images: list[np.ndarray], batch_size: int = 1, limit_side_len: int | None = None,
                     limit_type: str | None = None, thresh: float | None = None, box_thresh: float | None = None,
                     unclip_ratio: float | None = None, max_side_limit: int | None = None,
                     trim_margins: bool = False) -> list[tuple[np.ndarray, list[float]]]:
        """``detect`` for several pages; pages that resize to the same size share a model call
        (up to ``batch_size``), which gives the same boxes as one at a time. ``trim_margins``: the
        model sees each page without its blank outer rows and columns (``ocrfleet.detection.margins``;
        a page without ink: no model call, zero boxes; not with a fixed ``input_shape``)."""
        if limit_type is not None and limit_type not in preprocess.LIMIT_TYPES:
            raise ValueError(f"limit_type must be one of {preprocess.LIMIT_TYPES}, not {limit_type!r}")
        side = limit_side_len or self.limit_side_len
        kind = limit_type or self.limit_type
        cap = max_side_limit if max_side_limit is not None else self.max_side_limit
        trim = trim_margins and self.input_shape is None and self.image_shape is None  # not at the model's own size
        prepared, regions = [], []
        for im in images:
            page = check_page(im)
            if self.rgb:
                page = cv2.cvtColor(page, cv2.COLOR_BGR2RGB)
            resized, shape = preprocess.resize(page, side, kind, cap, self.input_shape, self.image_shape,
                                               self.keep_ratio)
            region = margins.content_region(resized) if trim else None
            regions.append((region, resized.shape[:2]))
            if region is not None:
                y0, y1, x0, x1 = region
                resized = resized[y0:y1, x0:x1]
            prepared.append((preprocess.normalize(resized, self.mean, self.std, self.scale) if resized.size else None,
                             shape))
        groups: dict[tuple, list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            if x is not None:
                groups.setdefault(x.shape, []).append(i)
        maps: list[np.ndarray | None] = [None] * len(prepared)
        limit = min(batch_size, self.backend_impl.max_batch or batch_size)
        for idx in groups.values():
            for k in range(0, len(idx), limit):
                part = idx[k:k + limit]
                batch = (prepared[part[0]][0][None] if len(part) == 1
                         else np.stack([prepared[i][0] for i in part]))
                with self._lock:
                    out = self.backend_impl.run(batch)
                for j, i in enumerate(part):
                    maps[i] = out[j, 0]
        maps = [_placed(m, region, size) for m, (region, size) in zip(maps, regions)]
        return [postprocess.boxes_from_map(
                    m, shape, thresh or self.thresh, box_thresh or self.box_thresh,
                    unclip_ratio or self.unclip_ratio, self.max_candidates, self.score_mode, self.use_dilation)
                for m, (_, shape) in zip(maps, prepared)]

    # ------------------------------------------------------------------ PaddleOCR API

    def predict(self, input, batch_size: int = 1, **kwargs) -> list[TextDetResult]:
        return list(self.predict_iter(input, batch_size=batch_size, **kwargs))

    def predict_iter(self, input, batch_size: int = 1, on_error: str | None = None, **overrides
                     ) -> Iterator[TextDetResult]:
        """ndarray | path | URL | directory | PDF (one result per page) | list of these."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive integer")
        count = 0
        for window in windows(input, check_page, batch_size, on_error or self.on_error, self.errors):
            yield from self._run(window, batch_size, count, overrides)
            count += len(window)

    def _run(self, items: list[Item], batch_size: int, offset: int, overrides: dict) -> Iterator[TextDetResult]:
        outs = self.detect_batch([it.image for it in items], batch_size=batch_size, **overrides)
        for k, (it, (polys, scores)) in enumerate(zip(items, outs)):
            yield TextDetResult(it.input_path, it.page_index, it.image, polys, scores, index=offset + k)

    __call__ = predict_iter


def _placed(m: np.ndarray | None, region, size: tuple[int, int]) -> np.ndarray:
    """The detector's map ``m`` of the input ``region`` (None: the whole input) put back in place
    on an empty map of the input's ``size``."""
    if region is None:
        return m
    full = np.zeros(size, np.float32)
    if m is not None:
        y0, y1, x0, x1 = region
        full[y0:y1, x0:x1] = m
    return full
