"""Servers the reliability suite can break on purpose: a redis-server with AOF (restart on the
same port and data dir, optional password and TLS), a SeaweedFS S3 that can be stopped and
started again on the same ports and data, and an HTTP origin (files, redirects, slow and
failing webhook endpoints). Built on ocrfleet/testing/servers.py."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ocrfleet.testing.servers import WeedS3, free_port, stop  # noqa: F401


class Weed(WeedS3):
    """``weed mini`` that can go down and come back on the same ports and data dir."""

    def __init__(self, sk: str | None = None, **kw):
        super().__init__(**kw)
        if sk:
            self.sk = sk

    def down(self) -> None:
        stop(self.proc, grace=5)

    def up(self) -> None:
        self.proc = subprocess.Popen(self.proc.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=dict(os.environ, TMPDIR=self.dir))
        self._wait_ready()


class Redis:
    """A private redis-server: AOF with fsync on every write, optional requirepass and TLS."""

    def __init__(self, password: str | None = None, tls: dict | None = None, aof: bool = True):
        self.dir = tempfile.mkdtemp(prefix="rel-redis-")
        self.port = free_port()
        self.password = password
        self.tls = tls  # {"cert": path, "key": path, "ca": path}
        self.aof = aof

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}"
        return f"redis://{auth}127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        a = ["redis-server", "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--logfile", f"{self.dir}/redis.log", "--daemonize", "no"]
        a += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        if self.password:
            a += ["--requirepass", self.password]
        if self.tls:
            a += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls["cert"],
                  "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                  "--tls-auth-clients", "no"]
        else:
            a += ["--port", str(self.port)]
        return a

    def client(self):
        import redis

        kw = {}
        if self.tls:
            kw = dict(ssl=True, ssl_ca_certs=self.tls["ca"])
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kw)

    def start(self) -> "Redis":
        import redis

        self.proc = subprocess.Popen(self.args(), start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.client().ping()
                return self
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
        stop(self.proc)
        raise RuntimeError(f"redis-server did not start: {open(f'{self.dir}/redis.log').read()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save; only what AOF (appendfsync always) already holds survives."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Origin:
    """HTTP server on 127.0.0.1. GET /files/<name>: registered bytes; GET /redirect?to=URL: 302;
    GET /slow/<seconds>/...: a 404 after that long.
    POST (webhooks) is recorded; the path picks the answer: /ok..., /status/<code>/..., 
    /slow/<seconds>/... (answers 200 after sleeping)."""

    def __init__(self, port: int = 0):
        self.files: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _answer(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                with outer.cond:
                    outer.requests.append({"method": "GET", "path": self.path, "time": time.time()})
                    outer.cond.notify_all()
                if parts.path == "/redirect":
                    return self._answer(302, headers={"location": parse_qs(parts.query)["to"][0]})
                if parts.path.startswith("/slow/"):  # GET /slow/<seconds>/...: answers 404 that late
                    time.sleep(float(parts.path.split("/")[2]))
                    return self._answer(404)
                name = parts.path.rsplit("/", 1)[-1]
                if parts.path.startswith("/files/") and name in outer.files:
                    return self._answer(200, outer.files[name])
                return self._answer(404)

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.cond:
                    outer.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                           "body": body, "time": time.time()})
                    outer.cond.notify_all()
                segs = urlsplit(self.path).path.strip("/").split("/")
                if segs[0] == "status":
                    return self._answer(int(segs[1]))
                if segs[0] == "slow":
                    time.sleep(float(segs[1]))
                return self._answer(200)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path: str) -> list[dict]:
        with self.cond:
            return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    def wait_posts(self, path: str, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.time() + timeout
        with self.cond:
            while True:
                hits = [r for r in self.requests if r["method"] == "POST" and r["path"] == path]
                if len(hits) >= count:
                    return hits
                if time.time() > deadline:
                    raise TimeoutError(f"{len(hits)}/{count} POSTs to {path} after {timeout} s")
                self.cond.wait(0.2)

    def stop(self) -> None:
        self.server.shutdown()
