"""High-performance mode: choose a backend by measurement, but never a slow one.

The measured default (``select.default_order``: on the CPU ONNX Runtime, or OpenVINO for
Paddle-format models on Intel; Paddle Inference for Paddle-format models on the GPU) is the
prior. A probe times every available backend on the batch shapes real traffic makes,
**interleaved** (backend A, B, C, then again, ``rounds`` times), so a burst of load from elsewhere hits every backend alike. A
challenger replaces the default only when it is faster by more than ``MARGIN`` in the median of
the per-round ratios *and* wins a clear majority of rounds; otherwise the default stays. The
figures are stored beside the choice in ``$OCRFLEET_HOME/hpi-choices.json``, keyed by model
file, device, precision, threads, CPU model, core count and the backends' package versions, so
a changed machine or upgraded package is probed again. ``ocrfleet hpi show|reprobe|clear``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata

import numpy as np

from ocrfleet.errors import BackendUnavailableError
from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.sources import ModelFiles, cache_root

MARGIN = 0.10      # a challenger must be >10 % faster than the default ...
MAJORITY = 2 / 3   # ... in the median round and in at least this share of the rounds
ROUNDS = 5
PACKAGES = ("onnxruntime", "openvino", "paddlepaddle", "paddlepaddle-gpu", "ocrfleet")


@dataclass
class Decision:
    backend: str
    default: str
    reason: str
    seconds: dict[str, list[float]] = field(default_factory=dict)  # per backend, per round
    ratios: dict[str, float] = field(default_factory=dict)         # median challenger/default
    wins: dict[str, float] = field(default_factory=dict)           # share of rounds won
    measured_at: float = 0.0
    machine: dict = field(default_factory=dict)


def choices_file() -> str:
    return str(cache_root() / "hpi-choices.json")


def cpu_model() -> str:
    from ocrfleet.recognition.devices import cpuinfo

    return cpuinfo("model name") or platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": EngineOptions(cpu_threads=1 << 16).threads,
            "host": platform.node(), "python": sys.version.split()[0], "versions": versions()}


def key(files: ModelFiles, opts: EngineOptions) -> str:
    stat = files.model_file.stat()
    m = machine()
    raw = json.dumps([files.name, str(files.model_file), stat.st_size, int(stat.st_mtime), opts.device,
                      opts.device_id, opts.precision, opts.threads, m["cpu"], m["cores"], m["host"],
                      m["versions"]], sort_keys=True)
    return f"{files.name}|{opts.device}|{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def load_all(path: str | None = None) -> dict:
    try:
        with open(path or choices_file(), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(files: ModelFiles, opts: EngineOptions) -> Decision | None:
    entry = load_all().get(key(files, opts))
    if not isinstance(entry, dict):
        return None  # an old-format entry (a bare name) or garbage: probe again
    try:
        return Decision(**{k: v for k, v in entry.items() if k in Decision.__dataclass_fields__})
    except TypeError:
        return None


def remember(files: ModelFiles, opts: EngineOptions, decision: Decision) -> None:
    path = choices_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = load_all(path)
    data[key(files, opts)] = asdict(decision) | {
        "model": files.name, "model_file": str(files.model_file), "device": opts.device,
        "precision": opts.precision, "threads": opts.threads}
    _write(path, data)


def _write(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file


def clear(model: str | None = None) -> int:
    """Forget remembered choices (all, or one model's); returns how many were dropped."""
    path = choices_file()
    data = load_all(path)
    keep = {k: v for k, v in data.items() if model is not None and k.split("|", 1)[0] != model}
    dropped = len(data) - len(keep)
    if dropped:
        _write(path, keep)
    return dropped


def workload(files: ModelFiles) -> list[np.ndarray]:
    """Typical repeated batches: text lines (1 and 8 lines at the model's width, where every line
    narrower than it is padded, and 2 lines at twice that), a page for a detector (960 x 736), 1
    and 8 crops at the model's own input size for a classifier."""
    rng = np.random.default_rng(0)
    task = files.task
    if task == "det" or not files.input_shape:
        shapes = [(1, 3, 960, 736)]
    elif task == "rec":
        _, height, width = files.input_shape
        shapes = [(n, 3, height, w) for n, w in ((1, width), (8, width), (2, 2 * width))]
    else:
        shapes = [(n, *files.input_shape) for n in (1, 8)]
    return [rng.uniform(-1, 1, size=s).astype(np.float32) for s in shapes]


# recognisers, per round: batches at widths no earlier round used, of these sizes: the engine
# batches only lines of the same padded width, so a line wider than the model's width mostly
# runs alone (392 varied lines made 157 widths: docs/performance.md)
FRESH_SIZES = (1, 1, 1, 1, 1, 2)
FRESH_PER_ROUND = len(FRESH_SIZES)


def fresh_workload(files: ModelFiles, rounds: int, seed: int = 1) -> list[list[np.ndarray]]:
    """Per round, recognition batches of ``FRESH_SIZES`` lines at widths not seen before
    (multiples of 8 above the model's width, up to five times it). Real lines come in hundreds of
    widths, so a backend that prepares kernels per input shape pays that cost in service: OpenVINO
    ran 1.3-1.5x slower than ONNX Runtime on varied lines on two hosts while the probe's earlier
    batches of 8 at few widths showed it 1.45x *faster* (docs/performance.md, 2026-12-01). Every
    backend sees each width first in the same round. Other tasks: no fresh batches (pages and
    crops have few shapes)."""
    if files.task != "rec" or not files.input_shape:
        return [[] for _ in range(rounds)]
    _, height, width = files.input_shape
    rng = np.random.default_rng(seed)
    widths = rng.permutation(np.arange(width + 8, 5 * width + 1, 8))[:rounds * FRESH_PER_ROUND]
    return [[rng.uniform(-1, 1, size=(n, 3, height, int(w))).astype(np.float32)
             for n, w in zip(FRESH_SIZES, widths[r * FRESH_PER_ROUND:(r + 1) * FRESH_PER_ROUND])]
            for r in range(rounds)]


def decide(default: str, seconds: dict[str, list[float]]) -> Decision:
    """The rule, on interleaved per-round timings (one total per backend per round)."""
    base = seconds[default]
    best, best_ratio = default, 1.0
    ratios, wins = {}, {}
    for name, times in seconds.items():
        if name == default:
            continue
        per_round = [t / b for t, b in zip(times, base)]
        ratios[name] = round(statistics.median(per_round), 4)
        wins[name] = round(sum(r < 1 - MARGIN for r in per_round) / len(per_round), 4)
        if ratios[name] < min(best_ratio, 1 - MARGIN) and wins[name] >= MAJORITY:
            best, best_ratio = name, ratios[name]
    if best == default:
        reason = f"no backend beat the default {default} by more than {MARGIN:.0%} in {MAJORITY:.0%} of rounds"
    else:
        reason = f"{best} took {ratios[best]:.2f}x the default's time in the median round, faster in {wins[best]:.0%}"
    return Decision(best, default, reason, {k: [round(t, 6) for t in v] for k, v in seconds.items()},
                    ratios, wins, time.time())


def measure(backends: dict[str, Backend], batches: list[np.ndarray], rounds: int = ROUNDS,
            progress=None, fresh: list[list[np.ndarray]] | None = None) -> dict[str, list[float]]:
    """Interleaved timings: every round runs every backend on every batch once, and on that
    round's ``fresh`` batches (shapes never run before, so their first-call cost counts)."""
    for backend in backends.values():
        for b in batches:
            backend.run(b)  # first calls build kernels and shape caches
    seconds: dict[str, list[float]] = {name: [] for name in backends}
    for r in range(rounds):
        order = list(backends) if r % 2 == 0 else list(reversed(backends))
        for name in order:
            t0 = time.perf_counter()
            for b in batches + (fresh[r] if fresh else []):
                backends[name].run(b)
            seconds[name].append(time.perf_counter() - t0)
        if progress:
            progress(r + 1, rounds)
    return seconds


def probe(files: ModelFiles, opts: EngineOptions, rounds: int = ROUNDS, progress=None
          ) -> tuple[Decision, Backend]:
    from ocrfleet.recognition.backends import select

    order = select.default_order(files, opts)
    if not order:
        raise BackendUnavailableError(f"no backend can run {files.name} on {opts.device}")
    log = logging.getLogger("ocrfleet")  # stderr: the first probe takes seconds, say what it does
    log.warning("enable_hpi: measuring %s for %s on this machine (once; remembered, see `ocrfleet hpi show`)",
                ", ".join(order), files.name)
    loaded: dict[str, Backend] = {}
    for i, name in enumerate(order, 1):
        log.info("enable_hpi: %s: loading backend %d/%d, %s", files.name, i, len(order), name)
        try:
            loaded[name] = select.create(name, files, opts)
        except Exception as exc:  # noqa: BLE001 - a backend that fails to load is not a candidate
            log.info("enable_hpi: %s: %s is not a candidate (%s)", files.name, name, exc)
    if not loaded:
        raise BackendUnavailableError(f"no backend can load {files.name} on {opts.device}")
    default = next(iter(loaded))  # the first of the measured default order that loads
    if len(loaded) > 1:
        seconds = measure(loaded, workload(files), rounds, progress, fresh_workload(files, rounds))
        decision = decide(default, seconds)
    else:
        decision = Decision(default, default, "only one backend is available")
    decision.machine = machine()
    chosen = loaded.pop(decision.backend)
    loaded.clear()  # the others are freed now
    return decision, chosen


def choose(files: ModelFiles, opts: EngineOptions, progress=None, rounds: int = ROUNDS
           ) -> tuple[str, Backend]:
    """The remembered choice for this model and machine, else probe and remember."""
    from ocrfleet.recognition.backends import select

    known = remembered(files, opts)
    if known is not None and known.backend in select.candidates(files, opts):
        return known.backend, select.create(known.backend, files, opts)
    decision, backend = probe(files, opts, rounds, progress)
    remember(files, opts, decision)
    return decision.backend, backend
