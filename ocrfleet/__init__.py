"""ocrfleet: PaddleOCR-compatible text recognition, fast, and served by a Celery fleet."""
from __future__ import annotations

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
