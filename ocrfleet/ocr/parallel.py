"""Recognition spread over several single-threaded engines, one per core (the ``fast`` preset).

On a CPU, one engine with N threads spends much of a short line's model call waking and joining
its threads; N engines of one thread each, fed whole "exact" batches (lines of the same padded
width, see ``ocrfleet.recognition.engine``) from a shared list, widest batches first, keep every
core busy; exact batches are made no larger than the lines divided by the engines (two lines
of one width on two engines: one each, not both on one). Each line is read exactly as it would
be alone, so the text is the same as one engine's at batch size 1 (tests/test_pipeline_presets.py).
Costs one more copy of the recognition model and its buffers per extra engine.
"""
from __future__ import annotations

import queue
from typing import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ocrfleet.recognition.engine import Recognizer, plan_batches
from ocrfleet.recognition.preprocess import widths


class ParallelRecognizer:
    def __init__(self, first: Recognizer, engines: int):
        """``first`` and ``engines - 1`` more engines built like it (same files, options, backend)."""
        self.recognizers = [first] + [Recognizer(first.files, first.opts, backend=first.backend_name)
                                      for _ in range(max(1, engines) - 1)]

    def recognize(self, images: list[np.ndarray], batch_size: int = 8, pack: str = "exact"
                  ) -> list[tuple[str, float]]:
        return self.recognize_lazy([im.shape[:2] for im in images], images.__getitem__, batch_size, pack)

    def recognize_lazy(self, sizes: list[tuple[int, int]], load: Callable[[int], np.ndarray],
                       batch_size: int = 8, pack: str = "exact") -> list[tuple[str, float]]:
        """``recognize`` for lines given by their (h, w) ``sizes``, line ``i`` made by ``load(i)``
        in the worker thread that reads it (the pipeline's crops: cut in parallel, beside the
        other engines' model calls)."""
        if len(self.recognizers) == 1 or len(sizes) < 2:
            return self.recognizers[0].recognize([load(i) for i in range(len(sizes))], batch_size, pack)
        shape = self.recognizers[0].files.input_shape
        if pack == "exact":  # no engine idle for want of a batch: the text is the same at any size
            batch_size = min(batch_size, -(-len(sizes) // len(self.recognizers)))
        batches = plan_batches(sizes, shape, batch_size, pack)
        batches.sort(key=lambda idx: -len(idx) * widths(*sizes[idx[0]], shape)[1])  # largest work first
        free: queue.Queue = queue.Queue()
        for rec in self.recognizers:
            free.put(rec)

        def run(idx: list[int]):
            images = [load(i) for i in idx]
            rec = free.get()
            try:
                return rec.recognize(images, len(idx), pack)
            finally:
                free.put(rec)

        out: list = [None] * len(sizes)
        with ThreadPoolExecutor(len(self.recognizers)) as pool:
            for idx, res in zip(batches, pool.map(run, batches)):
                for i, r in zip(idx, res):
                    out[i] = r
        return out
