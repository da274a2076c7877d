"""Memory soak helpers shared by bench/memory.py and tests/reliability/test_soak_memory.py: real
line images stretched to random widths, sent in calls of random batch sizes, with the process's
RSS sampled as it goes and a slope fitted after a warm-up."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ocrfleet import glibc


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """Resident set size of a process (``VmRSS``; ``VmHWM``: its peak so far), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} for {pid}")


def read_lines(labels_tsv: Path) -> list[np.ndarray]:
    """The BGR images listed in a ``labels.tsv`` (``rel_path<TAB>text`` rows)."""
    root = labels_tsv.parent
    out = []
    for row in labels_tsv.read_text(encoding="utf-8").splitlines():
        if row.strip():
            img = cv2.imread(str(root / row.split("\t", 1)[0]), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(img)
    return out


def varied_batches(pool: list[np.ndarray], rng: np.random.Generator, max_batch: int = 16,
                   stretch: tuple[float, float] = (0.3, 3.0)) -> Iterator[list[np.ndarray]]:
    """Endless batches of 1..max_batch lines, each a random pool line whose width is scaled by a
    log-uniform factor in ``stretch``: nearly every batch is a new model input shape."""
    lo, hi = np.log(stretch[0]), np.log(stretch[1])
    while True:
        batch = []
        for _ in range(int(rng.integers(1, max_batch + 1))):
            img = pool[int(rng.integers(len(pool)))]
            w = max(4, int(round(img.shape[1] * float(np.exp(rng.uniform(lo, hi))))))
            batch.append(cv2.resize(img, (w, img.shape[0]), interpolation=cv2.INTER_LINEAR))
        yield batch


def soak(recognize: Callable[[list[np.ndarray]], object], batches: Iterator[list[np.ndarray]],
         recognitions: int, every: int, on_mark: Callable[[int, float], None] | None = None,
         deadline: float = float("inf"), trim: bool = False) -> list[tuple[int, float]]:
    """Recognise ``recognitions`` lines from ``batches`` (or fewer, stopping at the
    ``time.monotonic()`` ``deadline``); returns (lines done, RSS MB) sampled each time another
    ``every`` lines are done (and at the end), after ``malloc_trim`` if ``trim``."""
    marks: list[tuple[int, float]] = []
    done = 0

    def sample():
        if trim:
            glibc.malloc_trim()
        marks.append((done, rss_mb()))

    while done < recognitions:
        if time.monotonic() > deadline:
            sample()
            break
        batch = next(batches)[: recognitions - done]
        recognize(batch)
        done += len(batch)
        if done // every != (done - len(batch)) // every or done == recognitions:
            sample()
            if on_mark:
                on_mark(done, marks[-1][1])
    return marks


def slope_after(marks: list[tuple[int, float]], warmup: int, per: int = 10_000) -> float | None:
    """Least-squares RSS slope (MB per ``per`` lines) of the marks after ``warmup`` lines."""
    tail = [(n, mb) for n, mb in marks if n >= warmup]
    if len(tail) < 3:
        return None
    x, y = np.array([n for n, _ in tail], float), np.array([mb for _, mb in tail], float)
    return float(np.polyfit(x, y, 1)[0]) * per


def main(argv=None) -> None:
    """``python -m ocrfleet.testing.soak --model M --backend B --labels a.tsv b.tsv ...``: one
    process soaks one recogniser and prints a JSON line with its RSS marks. Warm-up first: the
    batches the distribution can make (every batch size of the widest line at 8 stretches up to
    the largest), so the backend's working memory reaches its high-water mark, then
    ``--warmup`` random lines, then ``--lines`` random lines sampled every ``--every``;
    ``--leak-kb K`` then runs the same number of lines again keeping K KB per call, the leak
    the measurement must catch."""
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--labels", nargs="+", required=True, type=Path)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--stretch", type=float, nargs=2, default=[0.3, 1.2])
    ap.add_argument("--leak-kb", type=float, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trim", action="store_true", help="malloc_trim before each RSS sample")
    a = ap.parse_args(argv)

    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer

    pool = [img for tsv in a.labels for img in read_lines(tsv)]
    rec = Recognizer(sources.resolve(a.model, None), EngineOptions(cpu_threads=1), backend=a.backend)
    loaded = rss_mb()
    widest = max(pool, key=lambda im: im.shape[1] / im.shape[0])
    for f in np.geomspace(a.stretch[0], a.stretch[1], 8):  # every batch size, widths up to the widest
        line = cv2.resize(widest, (max(4, int(widest.shape[1] * f)), widest.shape[0]))
        for n in range(1, a.max_batch + 1):
            rec.recognize([line] * n, batch_size=n)
    batches = varied_batches(pool, np.random.default_rng(a.seed), a.max_batch, tuple(a.stretch))
    calls = {"n": 0}

    def recognize(batch):
        calls["n"] += 1
        rec.recognize(batch, batch_size=len(batch))

    soak(recognize, batches, a.warmup, a.every)
    marks = soak(recognize, batches, a.lines, a.every, trim=a.trim)
    out = {"backend": rec.backend_name, "rss_loaded_mb": loaded, "marks": marks, "calls": calls["n"],
           "rss_peak_mb": rss_mb(field="VmHWM")}
    if a.leak_kb:
        kept = []

        def leaky(batch):
            kept.append(b"\x01" * int(a.leak_kb * 1024))  # written, so resident
            recognize(batch)

        out["leak_marks"] = soak(leaky, batches, a.lines, a.every, trim=a.trim)
        out["leak_calls"] = len(kept)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
