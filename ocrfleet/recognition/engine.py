"""The predictor: BGR line images in, (text, score) out. No queue or file knowledge.

Images are sorted by padded width and batched only with images of the *same* padded width
(``pack="exact"``, the default), so a batch holds no more padding than each image alone: the
text is the same at every batch size, equal to PaddleOCR's at batch size 1 (PaddleOCR's own
batches pad to the widest member and change a few results). ``pack="sorted"`` fills batches
with neighbours in width order (a little padding, fewer model calls); ``pack="paddleocr"``
batches in input order exactly as PaddleOCR does. Results always come back in input order.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ocrfleet.errors import InvalidInputError
from ocrfleet.recognition.backends import select
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.decode import CTCDecoder
from ocrfleet.recognition.preprocess import make_batch, stretch, stretched_width, to_bgr, widths
from ocrfleet.recognition.sources import ModelFiles

MAX_ASPECT = 2000  # a line more than 2000x wider than tall is not a text line


class Recognizer:
    def __init__(self, files: ModelFiles, opts: EngineOptions, backend: str | None = None,
                 enable_hpi: bool = False):
        self.files = files
        self.opts = opts
        t0 = time.perf_counter()
        self.backend: Backend = select.choose(files, opts, backend, enable_hpi, _hpi_progress(files.name))
        probe = self.backend.run(np.zeros((1, 3, files.input_shape[1], files.input_shape[2]), np.float32))
        self.decoder = CTCDecoder(files.characters, probe.shape[2])
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()  # predictors are not thread-safe; serialise run()

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def recognize(self, images: list[np.ndarray], batch_size: int = 8, pack: str = "exact",
                  checked: bool = False) -> list[tuple[str, float]]:
        """Recognise BGR/gray/BGRA line images; returns (text, score) per image, in order.
        ``checked``: every image already went through ``check_line`` (not checked again)."""
        batch_size = check_batch_size(batch_size)
        batch_size = min(batch_size, self.backend.max_batch or batch_size)
        prepared = list(images) if checked else [check_line(im) for im in images]
        scale = self.files.width_scale  # lines stretched one batch at a time: at most 3x one batch in memory
        sizes = [(im.shape[0], stretched_width(im.shape[1], scale)) for im in prepared]
        out: list[tuple[str, float] | None] = [None] * len(prepared)
        for idx in plan_batches(sizes, self.files.input_shape, batch_size, pack):
            batch = make_batch([stretch(prepared[i], scale) for i in idx], self.files.input_shape)
            with self._lock:
                if hasattr(self.backend, "run_argmax"):  # the CTC argmax on the backend's device
                    results = self.decoder.from_argmax(*self.backend.run_argmax(batch))
                else:
                    results = self.decoder(self.backend.run(batch))
            for i, res in zip(idx, results):
                out[i] = res
        return out  # type: ignore[return-value]


def _hpi_progress(name: str):
    """enable_hpi's first probe takes seconds: say so (logged; remembered afterwards)."""
    import logging

    log = logging.getLogger("ocrfleet")

    def report(done: int, total: int) -> None:  # the probe itself announces it and each backend's load
        log.info("enable_hpi: %s probe round %d/%d", name, done, total)

    return report


PACKS = ("exact", "sorted", "paddleocr")


def plan_batches(sizes: list[tuple[int, int]], shape, batch_size: int, pack: str = "exact"
                 ) -> list[list[int]]:
    """Index lists, one per model call, for images of (h, w) ``sizes``."""
    if pack not in PACKS:
        raise ValueError(f"pack must be one of {PACKS}")
    order = list(range(len(sizes)))
    if pack == "paddleocr":
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    padded = [widths(h, w, shape)[1] for h, w in sizes]
    order.sort(key=lambda i: padded[i])
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and (pack == "sorted" or padded[last[0]] == padded[i]):
            last.append(i)
        else:
            batches.append([i])
    return batches


def check_batch_size(value, name: str = "batch_size") -> int:
    """The one rule for a batch size (engine, library, batcher): a positive integer; ValueError
    naming ``name`` otherwise. (A job spec's ``batch_size`` is also capped at 256 by its schema.)"""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def check_array(img, name: str = "array") -> None:
    """An image array of 1, 3 or 4 channels with pixels; InvalidInputError otherwise."""
    if not isinstance(img, np.ndarray):
        raise InvalidInputError(f"expected a numpy array, got {type(img).__name__}", input_ref=name)
    if img.size == 0 or img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise InvalidInputError(f"empty or zero-size image of shape {img.shape}", input_ref=name)
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        raise InvalidInputError(f"image has {img.shape[2]} channels; expected 1, 3 or 4", input_ref=name)


def check_line(img: np.ndarray, name: str = "array") -> np.ndarray:
    """Validate one line image and return it as uint8 BGR; InvalidInputError otherwise."""
    check_array(img, name)
    h, w = img.shape[:2]
    if w / h > MAX_ASPECT or h / w > MAX_ASPECT:
        raise InvalidInputError(f"image of {w}x{h} pixels is not a text line (aspect ratio over {MAX_ASPECT})",
                                input_ref=name)
    return to_bgr(img)
