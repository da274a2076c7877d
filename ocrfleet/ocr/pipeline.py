"""PaddleOCR: the PaddleOCR 3.7 OCR pipeline (same arguments, defaults and result), on ocrfleet's
detection, textline-orientation and recognition engines.

A page goes through: text detection → PaddleOCR's reading-order sort → one crop per box
(minimum-area rectangle, perspective warp, tall crops turned 90 degrees) → optional textline
orientation (crops classified as 180 degrees are turned) → recognition of all the page's crops
in width-sorted batches → lines scoring under ``text_rec_score_thresh`` dropped.

Deliberate differences from PaddleOCR 3.7 (see docs/pages.md):

* ``use_doc_orientation_classify`` / ``use_doc_unwarping``: ocrfleet has no offline weights for
  ``PP-LCNet_x1_0_doc_ori`` / ``UVDoc``, so ``None`` (PaddleOCR: on) means off here and ``True``
  raises ``ModelUnavailableError`` (MODEL_UNAVAILABLE) when the pipeline is built.
* ``use_textline_orientation=None`` (PaddleOCR: on) is on when the classifier's weights are
  available offline, off (with a warning) otherwise; ``True`` without weights raises MODEL_UNAVAILABLE.
* ``cpu_threads`` is an upper bound (never more threads than the process has cores);
  ``backend=`` picks the engine as in ``TextRecognition``; ``on_error="skip"`` skips bad inputs.
* ``return_word_box=True`` is not supported (InvalidInputError).

``preset="fast"`` (keyword-only; default ``None``: PaddleOCR's behaviour exactly) runs at
faster-paddle 1.0.4's operating point: the page's short side grown to at least 736 px, its long
side capped at 1600 px (``FAST_DET``), with the detector's own DB thresholds (its inference.yml;
PP-OCRv6: 0.2 / 0.4-0.45 / 1.4) instead of OCR.yaml's; the PP-OCRv6 tiny / small recognisers'
short lines padded to 64 / 96 px instead of 320 (``FAST_REC_INPUT_SHAPE``; an explicit
``text_rec_input_shape`` wins); and recognition on one single-threaded engine per core
(``ocrfleet.ocr.parallel``: the same text as one engine), two lines per model call unless
``text_recognition_batch_size`` says otherwise, the crops cut in those engines' threads; over
several pages (list, directory, PDF) the next page is detected on a second thread while this one
is recognised (``ocrfleet.ocr.ahead``: same results, same order); and margin trimming: the
detector runs on the page without its blank outer rows and columns (``ocrfleet.detection.margins``;
a page with no ink at all is not run through it). Explicit ``text_det_*`` arguments still win.
See docs/pages.md "Presets".

``trim_margins`` (keyword-only; default ``None``: on with ``preset="fast"`` when the detector runs
on ONNX Runtime on a CPU, where a new input size costs little; off otherwise) turns margin
trimming on or off whatever the preset and engine.

``reading_order="columns"`` (keyword-only; default ``None``: PaddleOCR's sort) reads multi-column
pages column by column (``ocrfleet.ocr.columns``); it changes the order of the lines only.
"""
from __future__ import annotations

import logging
import warnings
from typing import Iterator


from ocrfleet.errors import InvalidInputError, ModelUnavailableError, OcrFleetError
from ocrfleet.detection.api import check_page
from ocrfleet.detection.margins import trims_by_default
from ocrfleet.ocr.ahead import ahead
from ocrfleet.ocr.columns import READING_ORDERS, page_order
from ocrfleet.ocr.geometry import line_shape, minarea_quad, points_to_boxes, rotate_180
from ocrfleet.ocr.models import ocr_model_names
from ocrfleet.ocr.parallel import ParallelRecognizer
from ocrfleet.ocr.result import OCRResult
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.crop import rotate_crop
from ocrfleet.recognition.devices import parse_device
from ocrfleet.recognition.inputs import iter_inputs
from ocrfleet.recognition.visualize import font_path

log = logging.getLogger("ocrfleet")

# PaddleOCR 3.7's OCR.yaml (the pipeline's own defaults, which override the detector's)
DET_DEFAULTS = {"limit_side_len": 64, "limit_type": "min", "thresh": 0.3, "max_side_limit": 4000,
                "box_thresh": 0.6, "unclip_ratio": 1.5}
CLS_MODEL = "PP-LCNet_x1_0_textline_ori"  # OCR.yaml's textline orientation model
REC_BATCH_SIZE = 6
# preset="fast" on a CPU: two lines per model call on each per-core engine (exact-width batches:
# the text is the same at any batch size); see docs/pages.md "Presets" for the measurement
FAST_REC_BATCH_SIZE = 2
CLS_BATCH_SIZE = 6
# preset="fast": faster-paddle 1.0.4's detector resize (DetResizeForTest "min" 736, capped at 1600)
FAST_DET = {"limit_side_len": 736, "limit_type": "min", "max_side_limit": 1600}
# preset="fast": faster-paddle 1.0.4's recognition padding (its rec_min_width) for the recognisers it
# ships: lines narrower are padded to this width, not PaddleOCR's 320 px (docs/pages.md "Presets")
FAST_REC_INPUT_SHAPE = {"PP-OCRv6_tiny_rec": (3, 48, 64), "PP-OCRv6_small_rec": (3, 48, 96)}
PRESETS = (None, "fast")
DOC_MODELS = {"use_doc_orientation_classify": "PP-LCNet_x1_0_doc_ori", "use_doc_unwarping": "UVDoc"}


class PaddleOCR:
    """Detect, orient and recognise every text line of pages (images, PDFs, arrays)."""

    def __init__(self, doc_orientation_classify_model_name=None, doc_orientation_classify_model_dir=None,
                 doc_unwarping_model_name=None, doc_unwarping_model_dir=None,
                 text_detection_model_name=None, text_detection_model_dir=None,
                 textline_orientation_model_name=None, textline_orientation_model_dir=None,
                 textline_orientation_batch_size=None,
                 text_recognition_model_name=None, text_recognition_model_dir=None,
                 text_recognition_batch_size=None,
                 use_doc_orientation_classify=None, use_doc_unwarping=None, use_textline_orientation=None,
                 text_det_limit_side_len=None, text_det_limit_type=None, text_det_thresh=None,
                 text_det_box_thresh=None, text_det_unclip_ratio=None, text_det_input_shape=None,
                 text_rec_score_thresh=None, return_word_box=None, text_rec_input_shape=None,
                 lang=None, ocr_version=None, device=None, enable_hpi=False, use_tensorrt=False,
                 precision="fp32", enable_mkldnn=True, mkldnn_cache_capacity=10, cpu_threads=10, *,
                 backend: str | None = None, on_error: str = "raise", preset: str | None = None,
                 reading_order: str | None = None, trim_margins: bool | None = None):
        from ocrfleet.detection import TextDetection
        from ocrfleet.recognition.api import TextRecognition

        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, not {preset!r}")
        if reading_order not in READING_ORDERS:
            raise ValueError(f"reading_order must be one of {READING_ORDERS}, not {reading_order!r}")
        self.reading_order = reading_order
        if all(v is None for v in (text_detection_model_name, text_detection_model_dir,
                                   text_recognition_model_name, text_recognition_model_dir)):
            text_detection_model_name, text_recognition_model_name = ocr_model_names(lang, ocr_version)
            if text_detection_model_name is None:
                raise ValueError(f"No models are available for lang={lang!r} and ocr_version={ocr_version!r}.")
        elif lang is not None or ocr_version is not None:
            warnings.warn("`lang` and `ocr_version` will be ignored when model names or model directories "
                          "are not `None`.", stacklevel=2)
        _no_word_box(return_word_box)
        for flag, value in (("use_doc_orientation_classify", use_doc_orientation_classify),
                            ("use_doc_unwarping", use_doc_unwarping)):
            if value:
                raise ModelUnavailableError(
                    f"{flag}=True needs {DOC_MODELS[flag]}, which has no offline weights in ocrfleet; "
                    f"pass {flag}=False (or leave it None)")
        self.on_error = on_error
        self.errors: list[OcrFleetError] = []
        self.preset = preset
        self.text_rec_score_thresh = 0.0 if text_rec_score_thresh is None else float(text_rec_score_thresh)
        self.cls_batch_size = textline_orientation_batch_size or CLS_BATCH_SIZE
        engine = dict(device=device, enable_hpi=enable_hpi, use_tensorrt=use_tensorrt, precision=precision,
                      enable_mkldnn=enable_mkldnn, mkldnn_cache_capacity=mkldnn_cache_capacity,
                      cpu_threads=cpu_threads, backend=backend)
        self.text_det_model = TextDetection(model_name=text_detection_model_name,
                                            model_dir=text_detection_model_dir,
                                            input_shape=text_det_input_shape, **engine)
        self.text_det_params = preset_det_params(preset, self.text_det_model)
        self.trim_margins = (trims_by_default(preset, self.text_det_model) if trim_margins is None
                             else bool(trim_margins))
        for key, value in (("limit_side_len", text_det_limit_side_len), ("limit_type", text_det_limit_type),
                           ("thresh", text_det_thresh), ("box_thresh", text_det_box_thresh),
                           ("unclip_ratio", text_det_unclip_ratio)):
            if value is not None:
                self.text_det_params[key] = value
        parallel = preset == "fast" and parse_device(device)[0][0] == "cpu"
        if preset == "fast" and text_rec_input_shape is None:
            text_rec_input_shape = FAST_REC_INPUT_SHAPE.get(text_recognition_model_name)
        self.rec_batch_size = text_recognition_batch_size or (FAST_REC_BATCH_SIZE if parallel else REC_BATCH_SIZE)
        self.text_rec_model = TextRecognition(model_name=text_recognition_model_name,
                                              model_dir=text_recognition_model_dir,
                                              input_shape=text_rec_input_shape,
                                              **dict(engine, cpu_threads=1 if parallel else cpu_threads))
        first = self.text_rec_model.recognizers[0]
        self._recognizer = (ParallelRecognizer(first, EngineOptions(cpu_threads=cpu_threads).threads)
                            if parallel else first)
        self.textline_orientation_model = None
        if use_textline_orientation is not False:
            from ocrfleet.textline_orientation import TextLineOrientationClassification

            try:
                if textline_orientation_model_name is None and textline_orientation_model_dir is None:
                    textline_orientation_model_name = CLS_MODEL
                self.textline_orientation_model = TextLineOrientationClassification(
                    model_name=textline_orientation_model_name, model_dir=textline_orientation_model_dir,
                    **engine)
            except ModelUnavailableError as exc:
                if use_textline_orientation:
                    raise
                log.warning("textline orientation off: %s", exc)
        self.use_textline_orientation = self.textline_orientation_model is not None

    # ------------------------------------------------------------------ predict

    def predict(self, input, **kwargs) -> list[OCRResult]:
        return list(self.predict_iter(input, **kwargs))

    def predict_iter(self, input, *, use_doc_orientation_classify=None, use_doc_unwarping=None,
                     use_textline_orientation=None, text_det_limit_side_len=None, text_det_limit_type=None,
                     text_det_thresh=None, text_det_box_thresh=None, text_det_unclip_ratio=None,
                     text_rec_score_thresh=None, return_word_box=None, on_error: str | None = None
                     ) -> Iterator[OCRResult]:
        _no_word_box(return_word_box)
        if use_doc_orientation_classify or use_doc_unwarping:
            raise ModelUnavailableError("document orientation / unwarping models have no offline weights in ocrfleet")
        use_cls = self.use_textline_orientation if use_textline_orientation is None else bool(use_textline_orientation)
        if use_cls and self.textline_orientation_model is None:
            raise ModelUnavailableError("use_textline_orientation=True, but no textline orientation model is loaded")
        det_params = dict(self.text_det_params)
        for key, value in (("limit_side_len", text_det_limit_side_len), ("limit_type", text_det_limit_type),
                           ("thresh", text_det_thresh), ("box_thresh", text_det_box_thresh),
                           ("unclip_ratio", text_det_unclip_ratio)):
            if value is not None:
                det_params[key] = value
        thresh = self.text_rec_score_thresh if text_rec_score_thresh is None else float(text_rec_score_thresh)
        settings = {"use_doc_preprocessor": False, "use_textline_orientation": use_cls}
        mode = on_error or self.on_error
        detected = self._detect_pages(input, det_params, mode)
        if self.preset == "fast":
            detected = ahead(detected)
        for index, item, found in detected:
            yield self._recognize(item, found, det_params, thresh, settings, index)

    __call__ = predict_iter

    def _detect_pages(self, input, det_params: dict, mode: str) -> Iterator[tuple]:
        """(index, item, (page, polys, quads, shapes)) per good input: the page, its boxes in reading
        order and the quad and (h, w) of each box's crop (boxes whose crop would be empty are
        dropped); a bad input raises (``mode`` "raise") or is logged and skipped."""
        for index, item in enumerate(iter_inputs(input)):
            try:
                if item.error is not None:
                    raise item.error
                page = check_page(item.image, item.input_path or "array")
            except OcrFleetError as exc:
                if mode == "raise":
                    raise
                self.errors.append(exc)
                log.warning("skipping bad input %s: %s", item.input_path, exc)
                continue
            polys, _ = self.text_det_model.detect(
                page, limit_side_len=det_params["limit_side_len"], limit_type=det_params["limit_type"],
                thresh=det_params["thresh"], box_thresh=det_params["box_thresh"],
                unclip_ratio=det_params["unclip_ratio"], max_side_limit=det_params["max_side_limit"],
                trim_margins=self.trim_margins)
            dt_polys, quads, shapes = [], [], []
            for poly in page_order(polys, self.reading_order):
                quad = minarea_quad(poly)
                shape = line_shape(quad)
                if shape is not None:
                    dt_polys.append(poly)
                    quads.append(quad)
                    shapes.append(shape)
            yield index, item, (page, dt_polys, quads, shapes)

    def _recognize(self, item, found, det_params, thresh, settings, index) -> OCRResult:
        page, dt_polys, quads, shapes = found
        res = OCRResult(input_path=item.input_path, page_index=item.page_index,
                        doc_preprocessor_res={"output_img": page}, dt_polys=dt_polys,
                        model_settings=dict(settings), text_det_params=det_params, text_type="general",
                        text_rec_score_thresh=thresh, return_word_box=False,
                        rec_texts=[], rec_scores=[], rec_polys=[], vis_fonts=[], index=index)
        if quads:
            if settings["use_textline_orientation"]:
                crops = [rotate_crop(page, q) for q in quads]
                turns = self.textline_orientation_model.classify(crops, batch_size=self.cls_batch_size)
                angles = [1 if angle == 180 else 0 for angle, _ in turns]
                crops = [rotate_180(c) if a else c for c, a in zip(crops, angles)]
                outs = self._recognizer.recognize(crops, self.rec_batch_size)
            else:
                angles = [-1] * len(quads)
                outs = self._recognize_lazy(shapes, lambda i: rotate_crop(page, quads[i]))
            res["textline_orientation_angles"] = angles
            font = font_path()
            for poly, (text, score) in zip(dt_polys, outs):
                if score >= thresh:
                    res["rec_texts"].append(text)
                    res["rec_scores"].append(float(score))
                    res["rec_polys"].append(poly)
                    res["vis_fonts"].append(font)
        res["rec_boxes"] = points_to_boxes(res["rec_polys"])
        return res

    def _recognize_lazy(self, shapes, load):
        """Crops cut where they are read: in the recognition threads with the preset's engines."""
        if isinstance(self._recognizer, ParallelRecognizer):
            return self._recognizer.recognize_lazy(shapes, load, self.rec_batch_size)
        return self._recognizer.recognize([load(i) for i in range(len(shapes))], self.rec_batch_size)


def preset_det_params(preset: str | None, det) -> dict:
    """The pipeline's detection parameters under ``preset`` for the ``TextDetection`` ``det``:
    PaddleOCR's OCR.yaml (``None``) or ``FAST_DET`` with the detector's own DB thresholds."""
    if preset == "fast":
        return dict(DET_DEFAULTS, **FAST_DET, thresh=det.thresh, box_thresh=det.box_thresh,
                    unclip_ratio=det.unclip_ratio)
    return dict(DET_DEFAULTS)


def _no_word_box(value) -> None:
    if value:
        raise InvalidInputError("return_word_box=True is not supported by ocrfleet's PaddleOCR")
