"""ocrfleet: PaddleOCR-compatible text recognition, fast, and served by a Celery fleet.

Importing ocrfleet sets ``ORT_DISABLE_TELEMETRY=1`` unless it is already set: ONNX Runtime's
official wheels (1.30 and later) otherwise start Microsoft's 1DS telemetry on Linux when
onnxruntime is first imported (a device id and an event database under ``~/.cache/Microsoft``,
a ``.ses`` file in ``$TMPDIR``, uploads to Microsoft's collector). ocrfleet runs offline and
sends nothing anywhere; a program that imports onnxruntime *before* ocrfleet must set the
variable itself (README "Models and weights").
"""
from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before anything imports onnxruntime

__version__ = "0.1.0"

from ocrfleet.errors import (  # noqa: E402
    InputNotFoundError,
    InputTooLargeError,
    InvalidInputError,
    ModelUnavailableError,
    OcrFleetError,
)

__all__ = [
    "TextRecognition",
    "PaddleOCR",
    "OcrFleetError",
    "InvalidInputError",
    "InputNotFoundError",
    "InputTooLargeError",
    "ModelUnavailableError",
    "TextDetection",
    "TextLineOrientationClassification",
    "finetune",
    "__version__",
]


def __getattr__(name: str):
    if name == "TextDetection":  # lazy, as TextRecognition
        from ocrfleet.detection.api import TextDetection

        return TextDetection
    if name == "TextLineOrientationClassification":
        from ocrfleet.textline_orientation.api import TextLineOrientationClassification

        return TextLineOrientationClassification
    if name == "TextRecognition":  # lazy: importing the package stays cheap
        from ocrfleet.recognition.api import TextRecognition

        return TextRecognition
    if name == "finetune":  # the callable package ocrfleet.finetune; torch loads only when it runs
        import ocrfleet.finetune

        return ocrfleet.finetune
    if name == "PaddleOCR":
        from ocrfleet.ocr.pipeline import PaddleOCR

        return PaddleOCR
    raise AttributeError(name)
