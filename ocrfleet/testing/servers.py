"""Real servers for the fleet tests: SeaweedFS ``weed mini`` (S3), a private redis-server,
a webhook receiver, and ``ocrfleet worker`` subprocesses."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ocrfleet import dev_fleet

REPO = Path(__file__).resolve().parents[2]


# shared with `ocrfleet dev-fleet`
WeedS3, free_port, free_ports, stop = dev_fleet.WeedS3, dev_fleet.free_port, dev_fleet.free_ports, dev_fleet.stop


class RedisServer:
    def __init__(self, appendonly: bool = False):
        self.dir = tempfile.mkdtemp(prefix="fleet-redis-")
        self.port = free_port()
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes" if self.appendonly else "no",
             "--logfile", f"{self.dir}/redis.log", "--daemonize", "no"], start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class WebhookReceiver:
    """Records POSTs. Paths starting /fail answer 500; /flaky<N> answers 500 N times, then 200.
    Also serves ``files`` on GET /files/<name>; GET /flaky<N>/<name> answers 503 N times first."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self.cond = threading.Condition()
        self.counts: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.cond:
                    n = outer.counts[self.path] = outer.counts.get(self.path, 0) + 1
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "time": time.time()})
                    outer.cond.notify_all()
                status = 200
                if self.path.startswith("/fail"):
                    status = 500
                elif self.path.startswith("/flaky"):
                    status = 500 if n <= int(self.path[len("/flaky"):].split("?")[0] or 1) else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                with outer.cond:
                    n = outer.counts[self.path] = outer.counts.get(self.path, 0) + 1
                    outer.requests.append({"path": self.path, "method": "GET", "time": time.time()})
                head, _, name = path[1:].partition("/")
                failing = head.startswith("flaky") and n <= int(head[len("flaky"):] or 1)
                data = outer.files.get(name)
                if failing or data is None:
                    self.send_response(503 if failing else 404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def wait_for(self, predicate, count: int = 1, timeout: float = 30.0) -> list[dict]:
        deadline = time.time() + timeout
        with self.cond:
            while True:
                hits = [r for r in self.requests if predicate(r)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"{len(hits)}/{count} webhook requests after {timeout} s")
                self.cond.wait(left)

    def stop(self) -> None:
        self.server.shutdown()


class Worker:
    """``python -m ocrfleet.fleet_cli worker`` (execs celery) with the given settings env."""

    def __init__(self, env: dict, name: str, concurrency: int = 1, models: str = "PP-OCRv6_tiny_rec",
                 extra: list[str] | None = None):
        self.logfile = tempfile.NamedTemporaryFile(prefix=f"fleet-{name}-", suffix=".log", delete=False).name
        # its own TMPDIR, removed at stop(): billiard's pymp-* folders of killed children go with it
        self.tmpdir = tempfile.mkdtemp(prefix=f"fleet-{name}-tmp-")
        self.env = dict(os.environ, **env, PYTHONUNBUFFERED="1", TMPDIR=self.tmpdir)
        self.args = [sys.executable, "-m", "ocrfleet.fleet_cli", "worker", "--device", "cpu",
                     "--models", models, "-c", str(concurrency), "-n", f"{name}@%h"] + (extra or [])
        self.name = name
        self.final_log: str | None = None  # the log, kept here once the file is removed at stop()

    def start(self, app, timeout: float = 60.0) -> "Worker":
        self.final_log = None
        os.makedirs(self.tmpdir, exist_ok=True)
        self.log = open(self.logfile, "w")
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.tail()}")
            replies = app.control.ping(timeout=0.5)
            if any(self.name + "@" in k for r in replies for k in r):
                return self
        raise RuntimeError(f"worker not ready after {timeout} s:\n{self.tail()}")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def tail(self, n: int = 4000) -> str:
        if self.final_log is not None:
            return self.final_log[-n:]
        return Path(self.logfile).read_text()[-n:]

    def stop(self) -> None:
        """Stop the worker; its log moves into memory (``tail()``) and the file is removed, so a
        test run leaves nothing in /tmp."""
        stop(self.proc, grace=15)
        self.log.close()
        if self.final_log is None:
            self.final_log = Path(self.logfile).read_text(errors="replace")
            Path(self.logfile).unlink(missing_ok=True)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def isolated_settings(redis_url: str, s3, prefix: str, secret: str, model: str, **overrides):
    """Settings for a fleet isolated by key/queue/result prefixes on shared test servers; each
    suite passes the timeouts and retries its scenarios need as ``overrides``."""
    import uuid

    from ocrfleet.config.settings import load_settings

    run = uuid.uuid4().hex[:8]
    values = dict(
        broker_url=f"{redis_url}/0", result_backend=f"{redis_url}/1",
        key_prefix=f"{prefix}-{run}", queue_prefix=f"{prefix[0]}{run}.",
        s3_endpoint_url=s3.endpoint, s3_access_key=s3.ak, s3_secret_key=s3.sk,
        results_bucket="ocr-results", results_prefix=f"{prefix}-{run}",
        allowed_file_roots=[str(REPO / "tests" / "data" / "real")], default_model=model, worker_models=[model],
        webhook_secret=secret, webhook_allow_private=["127.0.0.1"], webhook_max_attempts=3,
        webhook_backoff_base=0.2, webhook_backoff_max=1.0, allowed_http_hosts=["127.0.0.1"],
        proc_alive_timeout=60, soft_shutdown_timeout=0, log_level="INFO")
    values.update(overrides)
    return load_settings(env={}, **values)
