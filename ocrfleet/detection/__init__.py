"""Text detection (PaddleOCR 3.x's ``TextDetection``): page images in, text-line boxes out."""
from ocrfleet.detection.api import TextDetection

__all__ = ["TextDetection"]
