"""The horizontal stretch a fine-tuned model reads its lines at (``width_scale``).

PP-OCR recognisers emit one CTC step per 8 input columns of a 48-px-high line. Narrow handwriting
packs many characters into few columns: a label needs at least one step per character (two for a
doubled letter), and CTC learns badly where a line needs most of its steps. Stretching every line
horizontally gives the model more steps per character. The factor is part of the exported model
directory (``inference.yml``: ``RecResizeImg.width_scale``), so ``TextRecognition``, ``ocrfleet
eval``, every backend and every worker stretch the lines they read exactly as training did.

``"auto"`` scores the stock weights on the validation lines at each of ``SCALES`` and trains at the
best (``train.better``: lower CER, then exact match; a tie goes to the smaller scale, cheaper per step)
among the scales the keep lines allow (``choose``).
Measured on the rendered dkg handwriting of ``bench/finetune.py``: the *stock* model reads 31 % of
the held-out lines exactly at 1.0 and 46.5 % at 1.5; printed sets move by a few lines either way.
"""
from __future__ import annotations

from ocrfleet.finetune.data import Line, fits
from ocrfleet.recognition.preprocess import stretch

SCALES = (1.0, 1.25, 1.5, 2.0)


def candidates(option) -> tuple[float, ...]:
    return SCALES if option == "auto" else (float(option),)


def apply(lines: list[Line], scale: float, charset, shape) -> tuple[list[Line], list[str]]:
    """Set each line's ``image`` to its source stretched ``scale`` times; drop (with a message
    each) the lines whose label no longer fits."""
    kept, problems = [], []
    for ln in lines:
        why = fits(ln, charset, shape, scale)
        if why:
            problems.append(why)
            continue
        ln.image = stretch(ln.source, scale)
        kept.append(ln)
    return kept, problems


def score_at(trainer, lines: list[Line], scale: float) -> dict:
    """The trainer's current weights on ``lines`` stretched ``scale`` times (``image`` untouched)."""
    from ocrfleet.finetune.train import score

    return score(trainer.predict([stretch(ln.source, scale) for ln in lines]), [ln.label for ln in lines])


def choose(trainer, lines: list[Line], option, say, keep: list[Line] = (), keep_before: dict | None = None,
           max_forgetting: float = 100.0, base: float = 1.0) -> tuple[float, list[dict]]:
    """The scale to train at, and the stock scores at every scale tried (``option`` "auto").

    With keep lines, a scale is a candidate only if the stock weights read the keep lines at it
    within ``max_forgetting`` points of how they read them as served (``keep_before``, at
    ``base``): the stretch is part of the exported model, and the blend towards the stock weights
    cannot undo it (a printed line stretched 2x reads worse with any weights)."""
    from ocrfleet.finetune.train import better

    if option != "auto":
        return float(option), []
    tried, best = [], None
    for scale in SCALES:  # every line is scored, also where its label cannot fit (a miss, as in service)
        m = score_at(trainer, lines, scale)
        t = {"width_scale": scale, "accuracy": m["accuracy"], "cer": m["cer"]}
        if keep:
            k = keep_before if scale == base else score_at(trainer, keep, scale)
            t["keep_points_lost"] = round(100 * (keep_before["accuracy"] - k["accuracy"]), 2)
            t["allowed"] = scale == base or t["keep_points_lost"] <= max_forgetting
        tried.append(t)
        if t.get("allowed", True) and (best is None or better(m, best[1])):
            best = (scale, m)
    if best is None:  # no candidate the keep lines allow: the stock model's own scale
        best = (base, None)
    say(f"width scale auto: the stock model on {len(lines)} validation lines reads "
        + ", ".join(f"{t['accuracy']:.1%} (CER {t['cer']:.2%}) at {t['width_scale']:g}"
                    + (f" [keep lines {0 - t['keep_points_lost']:+.1f} points{'' if t['allowed'] else ', not allowed'}]"
                       if keep else "") for t in tried)
        + f": training at {best[0]:g}")
    return best[0], tried
