"""Real servers for the fleet tests: SeaweedFS ``weed mini`` (S3), a private redis-server,
a webhook receiver, and ``ocrfleet worker`` subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int, below: int = 55000) -> list[int]:
    """n distinct free ports (below 55000: weed derives gRPC ports as port+10000 otherwise)."""
    ports: set[int] = set()
    while len(ports) < n:
        p = free_port()
        if p < below:
            ports.add(p)
    return list(ports)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class WeedS3:
    ak, sk = "fleetkey", "fleetsecret"

    def __init__(self, buckets=("ocr-results", "inputs")):
        self.dir = tempfile.mkdtemp(prefix="fleet-weed-")
        self.buckets = buckets

    def start(self) -> "WeedS3":
        d = self.dir
        with open(f"{d}/s3.json", "w") as fh:
            json.dump({"identities": [{"name": "t", "credentials": [{"accessKey": self.ak, "secretKey": self.sk}],
                                       "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, fh)
        names = ["master", "volume", "filer", "s3", "lance", "iceberg", "admin", "master_grpc",
                 "volume_grpc", "filer_grpc", "s3_grpc", "admin_grpc"]
        P = dict(zip(names, free_ports(len(names))))
        self.ports = P
        os.makedirs(f"{d}/logs")
        os.makedirs(f"{d}/data")
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        args = [weed, f"-logdir={d}/logs", "mini", f"-dir={d}/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", f"-master.port={P['master']}", f"-volume.port={P['volume']}",
                f"-filer.port={P['filer']}", f"-s3.port={P['s3']}", f"-s3.port.lance={P['lance']}",
                f"-s3.port.iceberg={P['iceberg']}", f"-admin.port={P['admin']}", "-admin.ui=false",
                f"-master.port.grpc={P['master_grpc']}", f"-volume.port.grpc={P['volume_grpc']}",
                f"-filer.port.grpc={P['filer_grpc']}", f"-s3.port.grpc={P['s3_grpc']}",
                f"-admin.port.grpc={P['admin_grpc']}", f"-s3.localSocket={d}/s3.sock",
                f"-filer.localSocket={d}/filer.sock", "-webdav=false", f"-s3.config={d}/s3.json"]
        self.log = open(f"{d}/weed.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, TMPDIR=d))
        self.endpoint = f"http://127.0.0.1:{P['s3']}"
        self._wait_ready()
        return self

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.ak, aws_secret_access_key=self.sk,
                            config=Config(s3={"addressing_style": "path"}))

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        c = self.client()
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {Path(self.dir, 'weed.log').read_text()[-2000:]}")
            try:
                for b in self.buckets:
                    try:
                        c.create_bucket(Bucket=b)
                    except c.exceptions.BucketAlreadyOwnedByYou:
                        pass
                c.put_object(Bucket=self.buckets[0], Key="_ready", Body=b"1")
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"weed mini not ready after {timeout} s: {last}")

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        for kind in ("master", "volume", "filer", "s3", "admin"):  # weed's gRPC sockets in /tmp
            Path(f"/tmp/seaweedfs-{kind}-grpc-{self.ports.get(kind + '_grpc')}.sock").unlink(missing_ok=True)


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
        self.env = dict(os.environ, **env, PYTHONUNBUFFERED="1")
        self.args = [sys.executable, "-m", "ocrfleet.fleet_cli", "worker", "--device", "cpu",
                     "--models", models, "-c", str(concurrency), "-n", f"{name}@%h"] + (extra or [])
        self.name = name
        self.final_log: str | None = None  # the log, kept here once the file is removed at stop()

    def start(self, app, timeout: float = 60.0) -> "Worker":
        self.final_log = None
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
