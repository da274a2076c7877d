"""The settings of one fine-tuning run (the CLI flags and ``ocrfleet.finetune()`` arguments)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ocrfleet.errors import InvalidInputError
from ocrfleet.recognition.sources import MAX_SCALE, MIN_SCALE


@dataclass
class Options:
    labels: list[str]
    output: str
    model_name: str | None = None
    model_dir: str | None = None
    val: list[str] = field(default_factory=list)
    val_fraction: float = 0.1      # without val: this share of the labels is held out, by path hash
    keep: list[str] = field(default_factory=list)  # lines to keep reading: guard against forgetting
    max_forgetting: float = 1.0    # points of exact match the keep lines may lose (blend, see blend.py)
    epochs: int = 30
    max_minutes: float | None = None
    batch_size: int = 8
    max_columns: int = 3200        # padded input columns per batch at most (activation memory)
    low_memory: bool = False       # CPU: activations >= 1 MiB mmapped (about half the peak RSS, ~3x the time)
    lr: float = 5e-4               # the neck and head; the backbone gets lr * backbone_lr_scale
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    patience: int = 6              # epochs without a better val score before stopping
    augment: float = 1.0           # scales every augmentation probability; 0 turns them off
    width_scale: float | str = "auto"  # stretch lines this much horizontally (train and serve); "auto": see scale.py
    min_usable: float = 0.5        # refuse the run if a smaller share of the labelled lines is usable
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    resume: bool = False
    force: bool = False
    keep_checkpoints: bool = False
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.labels, str):
            self.labels = [self.labels]
        if isinstance(self.val, str):
            self.val = [self.val]
        if isinstance(self.keep, str):
            self.keep = [self.keep]
        self.keep = [str(p) for p in self.keep or []]
        self.labels = [str(p) for p in self.labels or []]
        self.val = [str(p) for p in self.val or []]
        if not self.labels:
            raise InvalidInputError("finetune needs at least one label file (labels=...)")
        if not self.output:
            raise InvalidInputError("finetune needs an output directory (output=...)")
        self.output = str(self.output)
        checks = [
            ("epochs", isinstance(self.epochs, int) and self.epochs >= 1, "a positive integer"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "a positive integer"),
            ("max_columns", isinstance(self.max_columns, int) and self.max_columns >= 320, "an integer >= 320"),
            ("lr", _num(self.lr) and 0 < self.lr < 1, "a number in (0, 1)"),
            ("backbone_lr_scale", _num(self.backbone_lr_scale) and 0 <= self.backbone_lr_scale <= 1,
             "a number in [0, 1]"),
            ("val_fraction", _num(self.val_fraction) and 0 <= self.val_fraction < 1, "a number in [0, 1)"),
            ("min_usable", _num(self.min_usable) and 0 <= self.min_usable <= 1, "a number in [0, 1]"),
            ("max_minutes", self.max_minutes is None or (_num(self.max_minutes) and self.max_minutes > 0),
             "a positive number"),
            ("max_forgetting", _num(self.max_forgetting) and 0 <= self.max_forgetting <= 100,
             "a number of points in [0, 100]"),
            ("patience", isinstance(self.patience, int) and self.patience >= 1, "a positive integer"),
            ("augment", _num(self.augment) and 0 <= self.augment <= 2, "a number in [0, 2]"),
            ("width_scale", self.width_scale == "auto" or (_num(self.width_scale) and MIN_SCALE <= self.width_scale
                                                             <= MAX_SCALE), f"'auto' or a number in [{MIN_SCALE}, {MAX_SCALE}]"),
            ("warmup_steps", isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
             "a non-negative integer"),
            ("threads", self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             "a positive integer"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise InvalidInputError(f"finetune: {name} must be {what}, got {getattr(self, name)!r}")
        if self.resume and self.force:
            raise InvalidInputError("finetune: give resume or force, not both")

    def to_dict(self) -> dict:
        return asdict(self)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
