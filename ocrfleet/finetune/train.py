"""The training loop: CTC loss on the served graph, AdamW with a low backbone LR, warm-up then
cosine decay, validation after every epoch, best weights kept, early stopping, a time limit.

BatchNorm layers stay in inference mode (their running statistics are frozen: a few hundred
lines are too few to re-estimate them); every weight, BN scale/shift included, is trained.
"""
from __future__ import annotations

import copy
import math
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from ocrfleet.errors import OcrFleetError
from ocrfleet.finetune.augment import augment
from ocrfleet.finetune.data import Charset, Line, batches, to_tensor_batch
from ocrfleet.finetune.graph import TrainGraph
from ocrfleet.recognition.engine import plan_batches
from ocrfleet.recognition.evaluate import edit_distance, normalize


def score(preds: list[str], labels: list[str]) -> dict:
    """Exact match and CER (space-free NFKC, as ``ocrfleet eval``)."""
    n = len(labels)
    errs = sum(edit_distance(normalize(p), normalize(t)) for p, t in zip(preds, labels))
    chars = sum(len(normalize(t)) for t in labels)
    return {"lines": n, "accuracy": sum(p == t for p, t in zip(preds, labels)) / n if n else 0.0,
            "cer": errs / chars if chars else 0.0}


def better(a: dict, b: dict | None) -> bool:
    """Lower CER wins; equal CER: higher exact match."""
    return b is None or (a["cer"], -a["accuracy"]) < (b["cer"], -b["accuracy"])


class FinetuneCancelled(OcrFleetError):
    """The run was asked to stop (``should_stop``): nothing is exported."""

    code = "CANCELLED"


class Trainer:
    STOP_CHECK_EVERY = 10  # steps between two ``should_stop`` calls

    def __init__(self, tg: TrainGraph, charset: Charset, shape, opts, device: torch.device, should_stop=None):
        self.tg, self.charset, self.shape, self.opts, self.device = tg, charset, shape, opts, device
        self.should_stop = should_stop
        self.module = tg.module.to(device)
        self.module.eval()  # frozen BN statistics; gradients still flow
        frozen = opts.backbone_lr_scale == 0
        for p in tg.backbone if frozen else ():  # a frozen backbone: no backward pass through it at all
            p.requires_grad_(False)
        groups = [{"params": [] if frozen else tg.backbone, "lr": opts.lr * opts.backbone_lr_scale},
                  {"params": tg.head, "lr": opts.lr}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=opts.weight_decay)
        self.params = (tg.head if frozen else tg.backbone + tg.head)
        self.skipped = 0
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.total_steps = 1  # ``plan`` sets it once the training lines are known
        self.step = 0
        self.started = time.monotonic()
        self.seconds_before = 0.0  # training time of earlier runs (resume)

    def plan(self, steps_per_epoch: int) -> None:
        """The length of the cosine schedule: ``epochs`` of ``steps_per_epoch``."""
        self.total_steps = max(1, self.opts.epochs * steps_per_epoch)

    # ------------------------------------------------------------------ model calls
    def _log_probs(self, batch: np.ndarray) -> torch.Tensor:
        out = self.module(torch.from_numpy(batch).to(self.device))
        if self.tg.softmax_cut:
            return F.log_softmax(out, dim=2)
        return torch.log(out.clamp_min(1e-9))

    def predict(self, images: list[np.ndarray], batch_size: int = 16) -> list[str]:
        """Greedy CTC text per image; batches only hold images of one padded width, so the
        result is what the served model returns at any batch size."""
        out: list[str] = [""] * len(images)
        with torch.no_grad():
            for idx in plan_batches([im.shape[:2] for im in images], self.shape, batch_size, "exact"):
                lp = self._log_probs(to_tensor_batch([images[i] for i in idx], self.shape))
                for i, ids in zip(idx, lp.argmax(dim=2).cpu().numpy()):
                    out[i] = self.charset.decode(ids)
        return out

    def evaluate(self, lines: list[Line]) -> dict:
        preds = self.predict([ln.image for ln in lines])
        return {**score(preds, [ln.label for ln in lines]), "preds": preds}

    # ------------------------------------------------------------------ training
    def elapsed(self) -> float:
        """Training seconds of this run, earlier runs of a resumed one included."""
        return self.seconds_before + self.this_run()

    def this_run(self) -> float:
        return time.monotonic() - self.started

    def out_of_time(self) -> bool:
        """``max_minutes`` limits each invocation (a resumed run gets its own budget)."""
        return bool(self.opts.max_minutes) and self.this_run() >= 60 * self.opts.max_minutes

    def progress(self) -> float:
        """Share of the run done: steps, or time when the time limit comes first."""
        done = self.step / self.total_steps
        if self.opts.max_minutes:
            done = max(done, self.this_run() / (60 * self.opts.max_minutes))
        return min(done, 1.0)

    def set_lr(self) -> float:
        warm = min(1.0, (self.step + 1) / self.opts.warmup_steps) if self.opts.warmup_steps else 1.0
        factor = warm * 0.5 * (1 + math.cos(math.pi * self.progress()))
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * factor
        return factor

    def train_step(self, lines: list[Line], rng: np.random.Generator) -> float:
        self.set_lr()
        images = [augment(ln.image, rng, self.opts.augment) if self.opts.augment else ln.image for ln in lines]
        lp = self._log_probs(to_tensor_batch(images, self.shape))  # N, T, C
        targets = [self.charset.encode(ln.label) for ln in lines]
        n, t = lp.shape[0], lp.shape[1]
        loss = F.ctc_loss(lp.permute(1, 0, 2), torch.tensor([i for tg in targets for i in tg], dtype=torch.long),
                          torch.full((n,), t, dtype=torch.long),
                          torch.tensor([len(tg) for tg in targets], dtype=torch.long),
                          blank=0, reduction="mean", zero_infinity=True)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        if torch.isfinite(norm):
            self.optimizer.step()
        else:  # a bad batch must not poison the weights
            self.skipped += 1
        self.step += 1
        return float(loss.detach())

    def epoch(self, train: list[Line], epoch: int) -> tuple[float, bool]:
        """One pass over ``train``; returns (mean loss, stopped by the time limit)."""
        from tqdm import tqdm

        rng = random.Random(self.opts.seed * 1000 + epoch)
        nrng = np.random.default_rng(self.opts.seed * 1000 + epoch)
        plan = batches(train, self.opts.batch_size, rng, self.shape, self.opts.max_columns)
        losses = []
        with tqdm(plan, desc=f"epoch {epoch}/{self.opts.epochs}", unit="batch", file=sys.stderr,
                  disable=not self.opts.progress, leave=False) as bar:
            for lines in bar:
                if self.should_stop and self.step % self.STOP_CHECK_EVERY == 0 and self.should_stop():
                    raise FinetuneCancelled(f"fine-tuning stopped on request at step {self.step} (epoch {epoch})")
                losses.append(self.train_step(lines, nrng))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{self.optimizer.param_groups[-1]['lr']:.2e}")
                if self.out_of_time():
                    return float(np.mean(losses)), True
        return float(np.mean(losses)) if losses else float("nan"), False

    def weights(self) -> dict:
        return copy.deepcopy({k: v.detach().cpu() for k, v in self.module.state_dict().items()})
