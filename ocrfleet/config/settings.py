"""One settings object for the whole fleet: producer, workers and CLI read the same values.

Sources, later wins: defaults < a TOML/JSON file (``OCRFLEET_CONFIG=path``) < environment
variables ``OCRFLEET_<FIELD>`` (upper-case field name). Lists are comma-separated in env vars.
Every field is documented in docs/fleet.md.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import warnings
from dataclasses import dataclass, field, fields

from ocrfleet.envvars import MAX_PDF_PAGES, parse_bool


def _csv(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


@dataclass
class Settings:
    # queue + result backend
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    redis_url: str = ""            # idempotency keys, delivery counters, dead letters; default: broker_url
    # Redis Sentinel (docs/failover.md): URLs above as sentinel://h1:26379;sentinel://h2:26379/0
    sentinel_master_name: str = ""  # the monitored primary's name; required with sentinel:// URLs
    sentinel_password: str = ""     # AUTH for the sentinel processes (the primary's goes in the URLs)
    enqueue_min_replicas: int = 0   # >0: submit waits (WAIT) until this many replicas hold the job, else raises
    enqueue_replica_timeout_ms: int = 1000  # how long submit waits for those replicas
    key_prefix: str = "ocrfleet"   # Redis key prefix for the keys above
    queue_prefix: str = ""         # prepended to ocr.cpu / ocr.gpu / ocr.any / ocr.webhooks (isolation)
    result_expires: int = 24 * 3600
    visibility_timeout: int = 2 * 3600
    task_time_limit: int = 1800
    task_soft_time_limit: int = 1500
    unacked_restore_interval: float = 10.0
    proc_alive_timeout: float = 300.0
    soft_shutdown_timeout: float = 25.0
    max_memory_per_child: int = 3_000_000  # KiB
    max_deliveries: int = 3                # a job delivered more often is dead-lettered (poison)
    # storage
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    results_bucket: str = "ocr-results"
    results_prefix: str = "results"
    allowed_file_roots: list[str] = field(default_factory=list)
    allowed_http_hosts: list[str] = field(default_factory=list)
    max_input_bytes: int = 50 * 1024 * 1024
    max_spec_bytes: int = 256 * 1024
    max_spec_depth: int = 32               # nesting of the spec JSON (metadata included); checked iteratively
    max_job_pixels: int = 150_000_000      # decoded pixels a job may hold (repeats, PDF pages, crops); TOO_LARGE
    max_inputs: int = 1000
    storage_retries: int = 4
    storage_backoff_base: float = 2.0      # retry delays: base, 2*base, 4*base, ... (max 60 s)
    # recognition
    default_model: str = "PP-OCRv5_mobile_rec"
    default_batch_size: int = 8            # a job's lines per model call when its spec has no batch_size
    worker_device: str = "cpu"             # cpu | gpu:N
    worker_models: list[str] = field(default_factory=list)  # loaded + warmed in each process
    model_dirs: list[str] = field(default_factory=list)     # NAME=/abs/dir or NAME=s3://bucket/prefix: custom models by name
    allowed_model_roots: list[str] = field(default_factory=list)  # where a job spec's model_dir may point (dirs, s3://bucket/prefix)
    max_model_bytes: int = 300 * 1024 * 1024  # a job's model_dir: largest inference.onnx (+ inference.yml) read
    model_fetch_dir: str = ""              # s3:// model dirs are fetched here; "": $OCRFLEET_HOME/fetched-models
    model_fetch_keep: int = 8              # fetched model versions kept on disk (oldest removed first)
    # fine-tuning jobs (docs/fleet.md "Fine-tuning jobs")
    max_finetune_lines: int = 20_000       # labelled lines a finetune job may list
    max_finetune_bytes: int = 1024 * 1024 * 1024  # images a finetune job may download, in all
    model_cache_size: int = 2
    cpu_threads: int = 1
    ort_shared_arena_mb: int = 512         # >0: ONNX Runtime CPU sessions share one arena, first chunk this size; 0: one per session
    gpu_tensorrt: bool = True              # GPU workers: TensorRT (Paddle subgraph / ORT provider)
    gpu_precision: str = "fp16"            # GPU workers: fp16 | fp32
    max_pdf_pages: int = MAX_PDF_PAGES     # per PDF; the library's OCRFLEET_MAX_PDF_PAGES too
    # page jobs (docs/fleet.md "Page jobs")
    default_det_model: str = "PP-OCRv5_mobile_det"  # detector of page jobs without det_model_name
    auto_line_max_height: int = 144        # mode auto: an image at most this tall is one line (3x rec height 48)
    max_page_pixels: int = 40_000_000      # larger pages are scaled down to this before detection
    max_page_lines: int = 1000             # more detected lines on one page: TOO_LARGE naming the page
    page_preset: str = ""                  # "": PaddleOCR's detection parameters; "fast": PaddleOCR(preset="fast")'s
    page_det_max_side: int = 0             # >0: detector input's long side capped at this (worker memory; docs/pages.md)
    # cross-job batching (threads pool only; see docs/fleet.md "Batching across jobs")
    worker_pool: str = "prefork"           # prefork | threads (set by `ocrfleet worker --pool`)
    batcher_max_lines: int = 16            # most lines in one batched model call (all jobs); was batch_size
    batch_max_wait_ms: float = 20.0        # longest a line waits for others; < 0: no batching
    # webhooks
    webhook_secret: str = ""               # required by workers unless allow_unsigned_webhooks
    allow_unsigned_webhooks: bool = False  # explicit opt-out: start a worker without a webhook secret
    webhook_tenant_secrets: list[str] = field(default_factory=list)  # "tenant=secret" per spec "tenant"
    webhook_max_attempts: int = 6
    webhook_backoff_base: float = 30.0
    webhook_backoff_max: float = 1800.0
    webhook_timeout: float = 10.0
    webhook_allow_private: list[str] = field(default_factory=list)  # hosts/IPs exempt from the SSRF block
    # observability
    metrics_port: int = 0
    task_events: bool = True               # Celery task events (Flower); off: 3-7 % more tiny jobs/s
    log_level: str = "INFO"

    SECRET_FIELDS = ("s3_secret_key", "webhook_secret", "sentinel_password", "webhook_tenant_secrets")

    @property
    def redis(self) -> str:
        return self.redis_url or self.broker_url

    def queue(self, name: str) -> str:
        """Full queue name for ``cpu``, ``gpu``, ``any``, ``webhooks`` or ``finetune``."""
        return f"{self.queue_prefix}ocr.{name}"

    def key(self, *parts: str) -> str:
        return ":".join((self.key_prefix,) + parts)

    def public(self) -> dict:
        """The settings with secrets masked (safe to log or print)."""
        out = dataclasses.asdict(self)
        for name in self.SECRET_FIELDS:
            if out.get(name):
                out[name] = [v.split("=", 1)[0] + "=***" for v in out[name]] \
                    if isinstance(out[name], list) else "***"
        for name in ("broker_url", "result_backend", "redis_url"):
            out[name] = mask_url(out[name])
        return out

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def mask_url(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host (each entry of a ``;``-separated list)"""
    if ";" in url:
        return ";".join(mask_url(part) for part in url.split(";"))
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _coerce(f: dataclasses.Field, value):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("list"):
        return _csv(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        try:
            return parse_bool(value)
        except ValueError as exc:
            raise ValueError(f"setting {f.name}: {exc}") from None
    return str(value)


# old setting names still read (file, OCRFLEET_<NAME>, keyword), with a DeprecationWarning
RENAMED = {"batch_size": "batcher_max_lines"}


def _renamed(values: dict) -> dict:
    for old, new in RENAMED.items():
        if old in values:
            warnings.warn(f"ocrfleet setting {old!r} (OCRFLEET_{old.upper()}) is deprecated: use {new!r} "
                          f"(OCRFLEET_{new.upper()})", DeprecationWarning, stacklevel=3)
            value = values.pop(old)
            values.setdefault(new, value)  # the new name wins when both are set
    return values


def load_settings(path: str | None = None, env: dict | None = None, **overrides) -> Settings:
    env = os.environ if env is None else env
    values: dict = {}
    path = path or env.get("OCRFLEET_CONFIG")
    if path:
        with open(path, "rb") as fh:
            raw = fh.read()
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
        values.update(_renamed(dict(data.get("ocrfleet", data))))
    by_name = {f.name: f for f in fields(Settings)}
    for name in list(by_name) + list(RENAMED):
        key = "OCRFLEET_" + name.upper()
        if key in env:
            values[name] = env[key]
    values = _renamed(values)
    values.update(_renamed(dict(overrides)))
    unknown = set(values) - set(by_name)
    if unknown:
        raise ValueError(f"unknown ocrfleet setting(s): {', '.join(sorted(unknown))}")
    return Settings(**{k: _coerce(by_name[k], v) for k, v in values.items()})


def to_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in another process (e.g. a worker)."""
    out = {}
    for f in fields(Settings):
        v = getattr(settings, f.name)
        out["OCRFLEET_" + f.name.upper()] = ",".join(v) if isinstance(v, list) else str(v)
    return out
