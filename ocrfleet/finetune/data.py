"""Labelled lines for fine-tuning: reading, checking, splitting and batching.

Label files use the ``ocrfleet eval`` format (PaddleOCR's ``rec_gt``): one
``relative_image_path<TAB>label`` per line, paths relative to the label file's folder.
Every unusable line (no tab, empty text, missing or undecodable image, characters the
model's dictionary lacks, a label longer than the model can emit for that image width)
gets one message and is left out; the rest is used.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocrfleet.errors import InputNotFoundError, InvalidInputError
from ocrfleet.recognition.decode import build_labels
from ocrfleet.recognition.evaluate import read_image
from ocrfleet.recognition.preprocess import make_batch, stretched_width, widths

# PP-OCR recognisers (PPLCNetV3 / SVTR backbones) emit one CTC step per 8 input columns
CTC_STRIDE = 8


@dataclass
class Line:
    image_path: Path
    rel: str
    label: str
    where: str  # "labels.tsv:12", for messages
    image: np.ndarray | None = field(default=None, repr=False)   # what the model reads (stretched)
    source: np.ndarray | None = field(default=None, repr=False)  # the image as read from its file


def read_label_file(path: str | Path) -> tuple[list[Line], list[str]]:
    """The lines of one label file and one message per malformed line."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"label file {str(path)!r} does not exist")
    lines, problems = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"label file {str(path)!r} is not UTF-8 text ({exc})") from exc
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{path}:{no}"
        rel, tab, label = raw.partition("\t")
        if not tab:
            problems.append(f"{where}: expected 'image_path<TAB>label', got {raw[:80]!r}")
        elif not label.strip():
            problems.append(f"{where}: empty label for {rel!r}")
        else:
            lines.append(Line(path.parent / rel, rel, label, where))
    return lines, problems


class Charset:
    """The model's classes: 0 is the CTC blank, then the dictionary (then a space)."""

    def __init__(self, characters: list[str], num_classes: int | None = None):
        self.labels = build_labels(characters, num_classes)
        self.index: dict[str, int] = {}
        for i, ch in enumerate(self.labels[1:], 1):
            self.index.setdefault(ch, i)

    def missing(self, text: str) -> list[str]:
        return sorted({ch for ch in text if ch not in self.index})

    def encode(self, text: str) -> list[int]:
        return [self.index[ch] for ch in text]

    def decode(self, ids) -> str:
        out, prev = [], 0
        for i in ids:
            i = int(i)
            if i != prev and i != 0:
                out.append(self.labels[i])
            prev = i
        return "".join(out)


def ctc_steps(h: int, w: int, shape, scale: float = 1.0) -> int:
    """CTC time steps the model emits for an ``h`` x ``w`` image fed alone, stretched ``scale`` times."""
    return widths(h, stretched_width(w, scale), shape)[1] // CTC_STRIDE


def fits(ln: Line, charset: "Charset", shape, scale: float) -> str | None:
    """None when the model can emit ``ln``'s label from its image stretched ``scale`` times, else why not."""
    h, w = ln.source.shape[:2]
    steps = ctc_steps(h, w, shape, scale)
    if _min_steps(charset.encode(ln.label)) > steps:
        return (f"{ln.where}: label has {len(ln.label)} characters, more than the model can read from a "
                f"{w}x{h} image ({steps} steps at width scale {scale:g})")
    return None


def _min_steps(ids: list[int]) -> int:
    """CTC needs one step per label plus a blank between equal neighbours."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def check_lines(lines: list[Line], charset: Charset, shape, scale: float = 1.0
                ) -> tuple[list[Line], list[str], dict[str, int]]:
    """Load each line's image and keep the usable ones (a label must fit the image stretched
    ``scale`` times: ``fits``).

    Returns (usable lines with ``source`` and ``image`` set, one message per refused line, the
    count of each character missing from the dictionary).
    """
    good, problems, missing = [], [], {}
    for ln in lines:
        if not ln.image_path.is_file():
            problems.append(f"{ln.where}: image {ln.rel!r} not found")
            continue
        img = read_image(ln.image_path)
        if img is None or img.size == 0 or min(img.shape[:2]) < 2:
            problems.append(f"{ln.where}: image {ln.rel!r} is not a readable image")
            continue
        lack = charset.missing(ln.label)
        if lack:
            for ch in lack:
                missing[ch] = missing.get(ch, 0) + 1
            problems.append(f"{ln.where}: label {ln.label!r} has characters missing from the model's "
                            f"dictionary: {' '.join(repr(c) for c in lack)}")
            continue
        ln.source = ln.image = img
        why = fits(ln, charset, shape, scale)
        if why:
            problems.append(why)
            continue
        good.append(ln)
    return good, problems, missing


def held_out(rel: str, fraction: float, salt: str = "") -> bool:
    """Deterministic split by a hash of the image path: True for about ``fraction`` of paths."""
    digest = hashlib.sha256((salt + rel).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < fraction


VAL_SALT = "val:"  # independent of an unsalted train/test split made the same way (bench/finetune.py)


def split(lines: list[Line], fraction: float) -> tuple[list[Line], list[Line]]:
    """(train, val) with about ``fraction`` of the lines in val, chosen by a salted path hash."""
    val = [ln for ln in lines if held_out(ln.rel, fraction, VAL_SALT)]
    keep = {id(ln) for ln in val}
    return [ln for ln in lines if id(ln) not in keep], val


def batches(lines: list[Line], batch_size: int, rng: random.Random, shape,
            max_columns: int | None = None) -> list[list[Line]]:
    """Shuffled batches of lines of similar width (little padding), in random order.

    A batch holds at most ``batch_size`` lines and at most ``max_columns`` padded input
    columns in all (default ``batch_size * 640``; runs use ``Options.max_columns``): wide lines come in smaller batches, so
    the memory a step takes stays bounded (autograd keeps every activation of the batch).
    """
    max_columns = max_columns or batch_size * 640
    order = lines[:]
    rng.shuffle(order)
    pool = batch_size * 8
    out = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda ln: ln.image.shape[1] / ln.image.shape[0])
        cur: list[Line] = []
        for ln in chunk:
            w = widths(ln.image.shape[0], ln.image.shape[1], shape)[1]
            if cur and (len(cur) >= batch_size or (len(cur) + 1) * w > max_columns):
                out.append(cur)
                cur = []
            cur.append(ln)
        if cur:
            out.append(cur)
    rng.shuffle(out)
    return out


def to_tensor_batch(images: list[np.ndarray], shape) -> np.ndarray:
    """The exact inference preprocessing (resize to the model height, normalise, right-pad)."""
    return make_batch(images, shape)
