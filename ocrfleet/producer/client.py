"""``Producer``: validate a job spec, claim its id (idempotency), enqueue; ``Job``: a handle."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

import redis

from ocrfleet.config.celery import PRIORITY_NAMES, make_celery
from ocrfleet.config.settings import Settings, load_settings
from ocrfleet.jobs import contract
from ocrfleet.jobs import spec as jobspec
from ocrfleet.jobs import finetune_spec
from ocrfleet.jobs.contract import FINETUNE_TASK, RECOGNIZE_TASK, JobStatus
from ocrfleet.producer.replication import reenqueue_claim, send_replicated


class JobConflictError(ValueError):
    """The job_id was already used for a different spec."""

    code = "CONFLICT"


class EnqueueError(RuntimeError):
    """The broker refused the job (out of memory, read-only replica, down): nothing was enqueued
    and the job_id's claim was released, so the same submit can be retried."""

    code = "BROKER_UNAVAILABLE"


_digest = jobspec.digest
# Job.result() of a cancelled job: how long it waits for the job's own record after Celery's
# REVOKED state (a fine-tune asks its cancel flag every 10 steps, a few seconds at most)
REVOKE_GRACE_S = 15.0


REGION_SHAPES = ("a region is a box [x1, y1, x2, y2], a flat quad [x1, y1, ..., x4, y4] or a quad "
                 "[[x, y] x4]; pass one region list for one input, or one list (or None) per input")


def _normalise_inputs(inputs, pages, regions) -> list[dict]:
    """The spec's ``inputs`` list; SpecError for any malformed ``inputs``/``pages``/``regions``."""
    try:
        return _items(inputs, pages, regions)
    except jobspec.SpecError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        what = "regions" if regions is not None else "pages" if pages is not None else "inputs"
        hint = f": {REGION_SHAPES}" if what == "regions" else ""
        raise jobspec.SpecError(f"{what} is malformed ({type(exc).__name__}: {exc}){hint}") from None


def _items(inputs, pages, regions) -> list[dict]:
    if isinstance(inputs, (str, dict)):
        inputs = [inputs]
        if regions is not None and len(regions) and _is_region_list(regions):
            regions = [regions]  # a single input's regions
    items = []
    for i, inp in enumerate(inputs):
        item = {"ref": inp} if isinstance(inp, str) else dict(inp)
        if pages is not None and "pages" not in item:
            item["pages"] = list(pages)
        if regions is not None and "regions" not in item:
            if len(regions) != len(inputs):
                raise jobspec.SpecError(
                    f"regions must hold one list per input ({len(inputs)}), got {len(regions)}")
            if regions[i] is not None:
                if isinstance(regions[i], (str, bytes)) or not all(isinstance(r, (list, tuple)) for r in regions[i]):
                    raise jobspec.SpecError(f"regions of input {i}: {REGION_SHAPES}")
                item["regions"] = [_plain(r) for r in regions[i]]
        items.append(item)
    return items


def _is_region_list(regions) -> bool:
    """True when ``regions`` is a list of regions (for one input) rather than a list per input."""
    first = regions[0]
    return isinstance(first, (list, tuple)) and len(first) in (4, 8) and (
        all(isinstance(v, (int, float)) for v in first)
        or all(isinstance(p, (list, tuple)) and len(p) == 2 for p in first))


def _plain(region):
    if any(isinstance(v, (str, bytes, bool)) for p in region for v in (p if isinstance(p, (list, tuple)) else [p])):
        raise TypeError(f"coordinates must be numbers: {region!r:.80}")
    return [list(map(float, p)) if isinstance(p, (list, tuple)) else float(p) for p in region]


class Job:
    def __init__(self, producer: "Producer", job_id: str, created: bool = True):
        self.producer = producer
        self.id = job_id
        self.created = created  # False when an identical job with this id already existed

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    @property
    def result_uri(self) -> str:
        return contract.result_uri(self.producer.settings, self.id)

    def _async(self):
        return self.producer.app.AsyncResult(self.id)

    def status(self) -> JobStatus | str:
        """A ``JobStatus`` (a str): queued | running | retrying | succeeded | failed | cancelled | unknown"""
        r = self._async()
        state = r.state
        if state == "SUCCESS":
            return JobStatus((r.result or {}).get("status", JobStatus.SUCCEEDED))
        if state == "PENDING":  # no record yet: the worker's running mark, cancel flag, claim
            s = self.producer.settings
            pipe = self.producer._redis().pipeline(transaction=False)
            for key in (contract.running_key, contract.cancel_key, contract.job_key):
                pipe.exists(key(s, self.id))
            running, cancelled, known = pipe.execute()
            if running:
                return JobStatus.RUNNING
            if cancelled:
                return JobStatus.CANCELLED
            if not known:
                return JobStatus.UNKNOWN
        return contract.CELERY_STATES.get(state, state.lower())

    def result(self, timeout: float | None = 60.0) -> dict:
        """Wait for the job; the backend record: status, summary, result_uri, error. A failed job
        (Celery state FAILURE) or a cancelled one (REVOKED) returns its record too: nothing is raised."""
        r = self._async()
        try:
            value = r.get(timeout=timeout, propagate=False, interval=0.2)
        except Exception as exc:  # celery.exceptions.TimeoutError
            if type(exc).__name__ == "TimeoutError":
                raise TimeoutError(f"job {self.id} not finished after {timeout} s") from exc
            raise
        record = contract.record_of(r.state, value)
        if record is None and r.state == "REVOKED":
            record = self._record_after_revoke(REVOKE_GRACE_S if timeout is None else min(REVOKE_GRACE_S, timeout))
        if record is not None:
            return record
        if r.state == "REVOKED":  # no record from the worker within the grace
            return {"job_id": self.id, "status": JobStatus.CANCELLED, "result_uri": None, "summary": None,
                    "error": {"code": "CANCELLED", "message": "job was cancelled"}}
        if type(value).__name__ == "TimeLimitExceeded":
            return {"job_id": self.id, "status": JobStatus.FAILED, "result_uri": None, "summary": None,
                    "error": {"code": "TIME_LIMIT", "message": f"job exceeded the hard time limit ({value})"}}
        return {"job_id": self.id, "status": JobStatus.FAILED, "result_uri": None, "summary": None,
                "error": {"code": "INTERNAL", "message": f"{type(value).__name__}: {value}"}}

    def _record_after_revoke(self, grace: float) -> dict | None:
        """Celery marks a cancelled job REVOKED at once; the job's own record follows (written by
        the job when it stops, at step N of a fine-tune, or by the worker's parent for a queued
        job): wait up to ``grace`` seconds for it, reading the backend afresh (Celery caches a
        REVOKED state as final)."""
        deadline = time.monotonic() + grace
        while True:
            meta = self.producer.app.backend.get_task_meta(self.id, cache=False)
            record = contract.record_of(meta.get("status"), meta.get("result"))
            if record is not None or time.monotonic() >= deadline:
                return record
            time.sleep(0.2)

    def fetch_result(self) -> dict:
        """The full result JSON from S3."""
        from ocrfleet.storage.results import read_result

        return read_result(self.producer.settings, self.id)

    def cancel(self) -> None:
        """Queued jobs are dropped when a worker picks them up; running jobs stop between inputs."""
        s = self.producer.settings
        self.producer._redis().set(contract.cancel_key(s, self.id), "1", ex=s.result_expires)
        self.producer.app.control.revoke(self.id)


class Producer:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self.app = make_celery(self.settings, main="ocrfleet-producer")
        self._r: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        if self._r is None:
            from ocrfleet.config.redis import client_for

            self._r = client_for(self.settings)
        return self._r

    def build_spec(self, inputs, *, model_name=None, batch_size=None, pages=None, regions=None,
                   webhook_url=None, priority="normal", device="cpu", job_id=None, metadata=None,
                   visualize=False, tenant=None, mode=None, det_model_name=None,
                   use_textline_orientation=None, model_dir=None, reading_order=None) -> dict:
        """``mode``: "auto" | "page" | "line" for inputs without regions (docs/fleet.md "Page jobs");
        ``det_model_name`` / ``use_textline_orientation``: page jobs' detector and line turning;
        ``reading_order="columns"``: page jobs read multi-column pages column by column;
        ``model_dir``: a custom recognition model (``file:///dir`` or ``s3://bucket/prefix``) under
        the ``allowed_model_roots`` setting, named by ``model_name`` (docs/fleet.md "Custom models")."""
        s = self.settings
        priority = self._priority(priority)
        spec = {
            "spec_version": jobspec.SPEC_VERSION,
            "job_id": job_id or uuid.uuid4().hex,
            "model_name": model_name or s.default_model,
            "batch_size": s.default_batch_size if batch_size is None else batch_size,
            "device": device,
            "priority": priority,
            "inputs": _normalise_inputs(inputs, pages, regions),
            "submitted_at": time.time(),
        }
        if webhook_url:
            spec["webhook_url"] = webhook_url
        if metadata is not None:
            spec["metadata"] = metadata
        if visualize:  # only when asked: older workers refuse unknown spec keys
            spec["visualize"] = visualize
        if tenant:
            spec["tenant"] = tenant
        for key, value in (("mode", mode), ("det_model_name", det_model_name),
                           ("use_textline_orientation", use_textline_orientation), ("model_dir", model_dir),
                           ("reading_order", reading_order)):
            if value is not None:  # only when set: older workers refuse unknown spec keys
                spec[key] = value
        return self.check(spec)

    @staticmethod
    def _priority(priority) -> int:
        if isinstance(priority, str):
            if priority not in PRIORITY_NAMES:
                raise jobspec.SpecError(f"priority must be 0..9 or one of {sorted(PRIORITY_NAMES)}")
            return PRIORITY_NAMES[priority]
        return priority

    def check(self, spec: dict) -> dict:
        """The producer's one validation of a spec (schema and limits, references against the
        allow-lists, model names against the catalogue); SpecError, else ``spec``. The worker
        validates again on its side (it cannot trust the queue)."""
        s = self.settings
        if finetune_spec.is_finetune(spec):
            finetune_spec.validate(spec, s)
            check_refs(s, {"inputs": [{"ref": spec[k]} for k in ("labels", "val") if k in spec],
                           "webhook_url": spec.get("webhook_url")})
            check_models({"model_name": spec["model_name"]}, s)
            return spec
        jobspec.validate(spec, s.max_spec_bytes, s.max_inputs, s.max_spec_depth)
        check_refs(s, spec)
        check_models(spec, s)
        return spec

    def submit(self, inputs, **kwargs) -> Job:
        return self._enqueue(self.build_spec(inputs, **kwargs))

    def submit_finetune(self, labels: str, output: str, *, model_name=None, val=None, keep=None, job_id=None,
                        webhook_url=None, metadata=None, tenant=None, priority="normal", **options) -> Job:
        """Enqueue a fine-tuning job (``ocrfleet.jobs.finetune_spec``): train ``model_name``
        (default ``default_model``) on the lines of ``labels`` (an ``s3://`` or ``file://`` label
        file, image paths relative to it) and write the model directory to ``output``
        (``s3://bucket/prefix`` under ``allowed_model_roots``). ``job.result()["model_dir"]`` is
        where recognition jobs then load it (``submit(..., model_dir=...)``). ``keep``: a label file
        of lines the model must keep reading (see ``ocrfleet finetune --keep``). ``options``: the
        fine-tune's ``epochs``, ``max_minutes``, ``batch_size``, ``lr``, ``backbone_lr_scale``,
        ``augment``, ``patience``, ``max_forgetting``, ``width_scale`` (others are refused)."""
        unknown = sorted(set(options) - set(finetune_spec.OPTIONS))
        if unknown:
            raise TypeError(f"submit_finetune() got unexpected keyword arguments: {', '.join(unknown)}")
        spec = {"spec_version": jobspec.SPEC_VERSION, "job_id": job_id or uuid.uuid4().hex,
                "kind": finetune_spec.KIND, "model_name": model_name or self.settings.default_model,
                "labels": labels, "output": output, "priority": self._priority(priority),
                "submitted_at": time.time()}
        for key, value in (("val", val), ("keep", keep), *options.items(), ("webhook_url", webhook_url),
                           ("metadata", metadata), ("tenant", tenant)):
            if value is not None:
                spec[key] = value
        return self._enqueue(self.check(spec))

    def submit_many(self, jobs: Iterable[dict | Sequence], **common) -> list[Job]:
        """Each job is a dict of ``submit`` keyword arguments with ``inputs`` (or bare inputs).
        Every spec is validated before any is enqueued."""
        specs = []
        for job in jobs:
            kw = dict(common)
            if isinstance(job, dict) and "inputs" in job:
                kw.update(job)
                inputs = kw.pop("inputs")
            else:
                inputs = job
            specs.append(self.build_spec(inputs, **kw))
        return [self._enqueue(spec) for spec in specs]

    def submit_spec(self, spec: dict) -> Job:
        """Enqueue a spec built elsewhere (e.g. from JSON): checked like ``submit``'s."""
        return self._enqueue(self.check(spec))

    def _enqueue(self, spec: dict) -> Job:
        """Claim the job id and send an already checked spec."""
        s = self.settings
        job_id, digest = spec["job_id"], _digest(spec)
        key = contract.job_key(s, job_id)
        r = self._redis()
        # the claim carries a token of this call: when a connection drops after the SET landed and
        # redis-py retries it, the retry finds our own claim and still enqueues (else: job lost)
        claim = f"{digest}:{uuid.uuid4().hex}"
        try:
            claimed = r.set(key, claim, nx=True, ex=s.result_expires)
        except redis.ResponseError as exc:  # e.g. OOM (maxmemory + noeviction): nothing was written
            raise EnqueueError(f"job {job_id}: Redis refused the idempotency claim: {exc}") from exc
        if not claimed:
            existing = (r.get(key) or b"").decode()
            if existing != claim:
                if existing and existing.split(":", 1)[0] != digest:
                    raise JobConflictError(f"job_id {job_id!r} was already submitted with a different spec")
                if not reenqueue_claim(s, existing):  # enqueue_min_replicas: an unconfirmed claim is re-sent
                    return Job(self, job_id, created=False)
        try:
            task, queue = (FINETUNE_TASK, "finetune") if finetune_spec.is_finetune(spec) \
                else (RECOGNIZE_TASK, spec["device"])
            send_replicated(s, lambda: self.app.send_task(  # enqueue_min_replicas: WAIT (docs/failover.md)
                task, args=[spec], task_id=job_id, queue=s.queue(queue),
                priority=spec["priority"]), job_id, claim=(r, key, claim))
        except Exception as exc:
            r.delete(key)  # DEL is allowed even when Redis is out of memory
            if isinstance(exc, (redis.RedisError, OSError)) or type(exc).__module__.startswith("kombu"):
                raise EnqueueError(f"job {job_id} was not enqueued ({type(exc).__name__}: {exc}); "
                                   "its job_id claim was released, retry the submit") from exc
            raise
        return Job(self, job_id)

    def job(self, job_id: str) -> Job:
        return Job(self, job_id, created=False)


def check_refs(s: Settings, spec: dict) -> None:
    """Reject references the workers would refuse anyway (file roots, http hosts, private
    webhook targets), naming the setting that allows them."""
    import ipaddress
    from urllib.parse import unquote, urlsplit

    for i, item in enumerate(spec["inputs"]):
        parts = urlsplit(item["ref"])
        if parts.scheme == "file":
            if jobspec.file_allowed(s.allowed_file_roots, unquote(parts.path)) is None:
                raise jobspec.SpecError(f"inputs/{i}: {item['ref']!r} is not under an allowed file root; to "
                                        f"allow it, {jobspec.setting_hint('allowed_file_roots')}")
        elif parts.scheme in ("http", "https"):
            if not jobspec.url_allowed(s.allowed_http_hosts, item["ref"]):  # host, or host:port entries
                raise jobspec.SpecError(f"inputs/{i}: {parts.netloc!r} is not allow-listed; to allow it, "
                                        f"{jobspec.setting_hint('allowed_http_hosts')} (host, or host:port "
                                        "for ports other than 80/443)")
    if spec.get("webhook_url"):
        # literal private/loopback/link-local IPs are refused up front; names are resolved and
        # checked by the worker at delivery time (ocrfleet.tasks.webhooks.resolve_target)
        host = urlsplit(spec["webhook_url"]).hostname or ""
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = None
        if addr is not None and not (addr.is_global and not addr.is_multicast) \
                and host not in s.webhook_allow_private:
            raise jobspec.SpecError(f"webhook_url: {host} is not a public address; to allow it, "
                                    f"{jobspec.setting_hint('webhook_allow_private')}")


def check_models(spec: dict, s: Settings | None = None) -> None:
    """Refuse model names the workers cannot load (not in the catalogue nor the ``model_dirs``
    setting, or of another task), with the closest known names: a typo fails at submit, not on a
    worker. A spec's ``model_dir`` must lie under ``allowed_model_roots``; its ``model_name`` is free."""
    import difflib

    from ocrfleet.jobs import model_dirs
    from ocrfleet.recognition import catalog

    s = s or Settings()
    model_dirs.check_spec(s, spec)
    custom = model_dirs.named(s)
    for field, task in (("model_name", "rec"), ("det_model_name", "det")):
        name = spec.get(field)
        if name is None or (task == "rec" and (name in custom or spec.get("model_dir"))):
            continue
        info = catalog.MODELS.get(name)
        if info is not None and info.task == task:
            continue
        known = sorted(n for n, m in catalog.MODELS.items() if m.task == task) + \
            (sorted(custom) if task == "rec" else [])
        if info is not None:
            problem = f"{name!r} is a {info.task} model, not a {task} model"
        else:
            problem = f"unknown model {name!r}"
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise jobspec.SpecError(f"{field}: {problem}{hint} (`ocrfleet models list` shows the "
                                f"{len(known)} {task} models)")
