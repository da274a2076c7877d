"""Fixtures of the reliability suite: servers it may break (see servers.py), an isolated fleet
per scenario, and the session-finish hook that writes docs/reliability.md when asked to
(``python -m tests.reliability.report``)."""
from __future__ import annotations

import os
import uuid

import pytest

from ocrfleet.config.settings import to_env

from .helpers import MODEL, REPORT, line_png
from .servers import Origin, Redis, Weed

from ocrfleet.testing.servers import Worker


@pytest.fixture(scope="session")
def weed():
    server = Weed(sk="rel-s3-secret-" + uuid.uuid4().hex[:12]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_aof():
    server = Redis(aof=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def origin():
    o = Origin()
    yield o
    o.stop()


@pytest.fixture(scope="session")
def line_ref(weed):
    """s3://inputs/rel/line.png: a tiny printed text line."""
    weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
    return "s3://inputs/rel/line.png"


class Fleet:
    """Workers started by a test, stopped at teardown (whatever state they were left in)."""

    def __init__(self):
        self.workers: list[Worker] = []

    def worker(self, settings, producer, concurrency: int = 1, name: str | None = None,
               env: dict | None = None, extra: list[str] | None = None) -> Worker:
        w = Worker({**to_env(settings), **(env or {})}, name=name or f"rel{uuid.uuid4().hex[:6]}",
                   concurrency=concurrency, models=MODEL, extra=extra)
        self.workers.append(w)
        return w.start(producer.app, timeout=90)

    def stop(self):
        for w in self.workers:
            try:
                w.stop()
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture()
def fleet():
    f = Fleet()
    yield f
    f.stop()


@pytest.fixture(scope="session")
def session_fleet():
    f = Fleet()
    yield f
    f.stop()


def pytest_sessionfinish(session, exitstatus):
    """docs/reliability.md is regenerated only on request: ``python -m tests.reliability.report``
    (which runs this suite with OCRFLEET_RELIABILITY_REPORT set), never by an ordinary run."""
    path = os.environ.get("OCRFLEET_RELIABILITY_REPORT")
    if not path or not any(REPORT.values()):
        return
    from .report import write_report

    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    failed = [r.nodeid for r in (tr.stats.get("failed", []) + tr.stats.get("error", []))] if tr else []
    write_report(REPORT, path, complete=exitstatus == 0, failed=failed)
    if tr:
        tr.write_line(f"reliability report written to {path}")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a reliability scenario over ~20 s (still runs by default; "
                                       "deselect with -m 'not slow')")
