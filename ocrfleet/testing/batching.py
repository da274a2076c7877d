"""Drive a cross-job ``Batcher`` from many jobs at once (the batcher tests of every backend)."""
from __future__ import annotations

import threading


def recognize_concurrently(batcher, lines: list, chunks: list[list[int]], timeout: float = 60.0
                           ) -> tuple[dict[int, list], list[Exception]]:
    """Each chunk of line indices is one job on its own thread, all released together; returns
    the results per chunk index and the exceptions raised."""
    results: dict[int, list] = {}
    errors: list[Exception] = []
    start = threading.Barrier(len(chunks))

    def job(k, idx):
        try:
            with batcher.job() as token:
                start.wait()
                results[k] = batcher.recognize([lines[i] for i in idx], token=token)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(k, idx)) for k, idx in enumerate(chunks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results, errors
