"""The guard against forgetting: blend the fine-tuned weights back towards the stock ones.

With ``keep`` label files (lines the model must keep reading: the user's printed documents, say),
the run scores the stock model on them before training. After training, it tries the weights
``stock + alpha * (best - stock)``: alpha = 1.0 first, and when that forgets too much, a bisection
of 0.9, 0.8, ... 0.1 for the largest alpha whose exact match on the keep lines is at most
``max_forgetting`` points below the stock model's (at most 4 more readings of the keep lines; it
assumes forgetting does not grow as alpha shrinks, the premise of the blend); when none is, the
stock weights (alpha 0). Weight-space interpolation between a
fine-tuned model and its base (WiSE-FT, Wortsman et al. 2022) keeps most of the new skill while
giving back most of what was forgotten; with BatchNorm statistics frozen during training, every
blend is a model with the same normalisation as both ends.
"""
from __future__ import annotations

import torch

ALPHAS = tuple(round(1.0 - 0.1 * i, 1) for i in range(10))  # 1.0 .. 0.1


def mix(stock: dict, tuned: dict, alpha: float) -> dict:
    """``stock + alpha * (tuned - stock)`` for floating tensors; the rest (counters) as tuned."""
    out = {}
    for k, v in tuned.items():
        s = stock[k]
        out[k] = s + alpha * (v - s) if torch.is_floating_point(v) else v.clone()
    return out


def choose(trainer, stock: dict, tuned: dict, keep: list, keep_before: dict, max_forgetting: float,
           val: list, say) -> dict:
    """Load the chosen blend into ``trainer.module``; return a report of the choice."""
    tried, scores = [], {}

    def passes(alpha: float) -> bool:
        trainer.module.load_state_dict(mix(stock, tuned, alpha))
        m = scores[alpha] = trainer.evaluate(keep)
        lost = 100 * (keep_before["accuracy"] - m["accuracy"])
        tried.append({"alpha": alpha, "keep_accuracy": m["accuracy"], "keep_cer": m["cer"],
                      "points_lost": round(lost, 2)})
        return lost <= max_forgetting

    alpha = 0.0
    if passes(ALPHAS[0]):
        alpha = ALPHAS[0]
    else:  # bisect 0.9 .. 0.1: forgetting shrinks as alpha does (4 readings of the keep lines, not 9)
        lo, hi = 1, len(ALPHAS) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if passes(ALPHAS[mid]):
                alpha, hi = ALPHAS[mid], mid - 1
            else:
                lo = mid + 1
    if alpha:
        trainer.module.load_state_dict(mix(stock, tuned, alpha))
        m = scores[alpha]
    else:
        trainer.module.load_state_dict(stock)
        m = dict(keep_before)
    report = {"alpha": alpha, "max_forgetting": max_forgetting, "keep_lines": len(keep),
              "keep_before": {k: keep_before[k] for k in ("accuracy", "cer")},
              "keep_after": {"accuracy": m["accuracy"], "cer": m["cer"]}, "tried": tried}
    if val:
        v = trainer.evaluate(val)
        report["val_after"] = {"accuracy": v["accuracy"], "cer": v["cer"]}
    if alpha == 1.0:
        say(f"keep lines: exact {keep_before['accuracy']:.1%} -> {m['accuracy']:.1%} "
            f"(within {max_forgetting:g} points): exporting the fine-tuned weights as they are")
    elif alpha > 0:
        say(f"keep lines: the fine-tuned weights lose {tried[0]['points_lost']:.1f} points; blended "
            f"{alpha:.1f} of the way from the stock weights, they read {m['accuracy']:.1%} "
            f"(stock {keep_before['accuracy']:.1%}): exporting the blend")
    else:
        say(f"keep lines: every blend loses more than {max_forgetting:g} points: exporting the stock weights")
    return report
