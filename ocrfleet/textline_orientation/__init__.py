"""Text-line orientation (PaddleOCR 3.x's ``TextLineOrientationClassification``): 0 / 180 degrees."""
from ocrfleet.textline_orientation.api import TextLineOrientationClassification

__all__ = ["TextLineOrientationClassification"]
