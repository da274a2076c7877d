"""Run a generator one step ahead of its consumer, on a thread of its own.

``ahead(gen)`` yields what ``gen`` yields, in the same order; while the consumer works on item
N, a thread already computes item N+1 (then waits). The pipeline's ``preset="fast"`` uses it to
detect the next page (ONNX Runtime / OpenCV release the GIL) while it recognises this one. An
exception raised by ``gen`` is raised to the consumer at the same point of the sequence as
without the thread; closing the consumer (``break``, garbage collection) stops the thread.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
_DONE = object()
POLL_S = 0.1


def ahead(gen: Iterator[T], depth: int = 1) -> Iterator[T]:
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for value in gen:
                if not put((value, None)):
                    return
        except BaseException as exc:  # handed over: raised in the consumer's thread
            put((_DONE, exc))
            return
        finally:
            close = getattr(gen, "close", None)
            if close is not None and stop.is_set():
                close()
        put((_DONE, None))

    thread = threading.Thread(target=produce, name="ocrfleet-ahead", daemon=True)
    thread.start()
    try:
        while True:
            value, exc = slots.get()
            if exc is not None:
                raise exc
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        thread.join()
