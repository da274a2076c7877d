"""The exception types of ocrfleet, each with a stable error code.

Every error raised for bad input or a missing model is an ``OcrFleetError``; the
``code`` is what the fleet writes into a failed job's result.
"""
from __future__ import annotations


class OcrFleetError(Exception):
    """Base class. ``code`` is one of the documented job error codes."""

    code = "INTERNAL"

    def __init__(self, message: str, *, input_ref: str | None = None):
        self.input_ref = input_ref
        if input_ref is not None and input_ref not in message:
            message = f"{message} (input: {input_ref})"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


class InvalidInputError(OcrFleetError, ValueError):
    """The input cannot be decoded or is not something we can recognise."""

    code = "INVALID_INPUT"


class InputNotFoundError(OcrFleetError, FileNotFoundError):
    """A referenced file, URL, object or bucket does not exist or cannot be reached."""

    code = "NOT_FOUND"


class InputTooLargeError(OcrFleetError):
    """An input is over a configured size limit (bytes, pixels, pages)."""

    code = "TOO_LARGE"


class ModelUnavailableError(OcrFleetError, LookupError):
    """The model is unknown or its weights are not available here."""

    code = "MODEL_UNAVAILABLE"


class BackendUnavailableError(OcrFleetError, RuntimeError):
    """The requested inference backend / device cannot be used on this machine."""

    code = "MODEL_UNAVAILABLE"
