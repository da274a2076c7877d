"""CTC greedy decoding as PaddleOCR's CTCLabelDecode does it.

Class 0 is the blank; classes 1..n are the dictionary in order, then a space when
``use_space_char``. Repeats are merged, blanks dropped; the score is the mean of the kept
per-step maximum probabilities (0.0 for an empty result).
"""
from __future__ import annotations

import numpy as np

from ocrfleet.errors import ModelUnavailableError


def build_labels(chars: list[str], num_classes: int | None = None) -> list[str]:
    """Class labels for a dictionary, tolerating dicts that already hold blank and space."""
    chars = list(chars)
    if chars and chars[0] == "blank":
        chars = chars[1:]
        if chars and chars[-1] == " ":
            chars = chars[:-1]
    with_space = ["blank", *chars, " "]
    if num_classes is None or num_classes == len(with_space):
        return with_space
    if num_classes == len(chars) + 1:
        return ["blank", *chars]
    raise ModelUnavailableError(
        f"dictionary has {len(chars)} characters but the model predicts {num_classes} classes")


class CTCDecoder:
    def __init__(self, chars: list[str], num_classes: int | None = None):
        self.labels = np.array(build_labels(chars, num_classes), dtype=object)

    def __call__(self, probs: np.ndarray) -> list[tuple[str, float]]:
        idx = probs.argmax(axis=2)
        prob = np.take_along_axis(probs, idx[:, :, None], axis=2)[:, :, 0]
        return self.from_argmax(idx, prob)

    def from_argmax(self, idx: np.ndarray, prob: np.ndarray) -> list[tuple[str, float]]:
        """Decode from the per-step best class ``idx`` and its probability ``prob``, (N, T) each
        (a backend that takes the argmax on its device hands these over)."""
        keep = np.ones_like(idx, dtype=bool)
        keep[:, 1:] = idx[:, 1:] != idx[:, :-1]
        keep &= idx != 0
        out = []
        for i in range(idx.shape[0]):
            sel = keep[i]
            text = "".join(self.labels[idx[i][sel]])
            conf = prob[i][sel]
            score = np.mean(conf) if conf.size else np.float32(0.0)
            out.append((text, float(score)))
        return out
