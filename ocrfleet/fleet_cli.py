"""Fleet subcommands for the ``ocrfleet`` CLI: ``worker``, ``submit``, ``webhooks dead-letter``.

``register(subparsers)`` adds them to an argparse parser; ``python -m ocrfleet.fleet_cli``
runs them on their own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from ocrfleet.exit_codes import Exit


def register(subparsers) -> None:
    w = subparsers.add_parser("worker", help="run a Celery recognition worker")
    w.add_argument("--device", default=None, help="cpu | gpu:N (default: OCRFLEET_WORKER_DEVICE or cpu)")
    w.add_argument("--models", default=None, help="comma-separated models to load in every process "
                                                  "(recognisers, and detectors for page jobs, e.g. PP-OCRv5_mobile_det)")
    w.add_argument("--concurrency", "-c", type=int, default=None,
                   help="prefork: worker processes (default: cores, 1 on GPU); threads: jobs in flight (default 8)")
    w.add_argument("--pool", "-P", choices=["prefork", "threads"], default=None,
                   help="prefork (default; one job per process, time limits enforced by Celery) or threads "
                        "(one process, jobs in flight share a batched model: for short jobs)")
    w.add_argument("--batch-wait-ms", type=float, default=None,
                   help="threads pool: longest a line waits for lines of other jobs (default 20; <0: no batching)")
    w.add_argument("--batch-size", type=int, default=None, help="threads pool: lines per model call (default 16)")
    w.add_argument("--cpu-threads", type=int, default=None,
                   help="intra-op threads per model (default: OCRFLEET_CPU_THREADS, 1); with --pool "
                        "threads one inference thread per model uses them all")
    w.add_argument("--tensorrt", action=argparse.BooleanOptionalAction, default=None,
                   help="GPU: build TensorRT engines (default: OCRFLEET_GPU_TENSORRT, on)")
    w.add_argument("--precision", choices=["fp16", "fp32"], default=None,
                   help="GPU: TensorRT precision (default: OCRFLEET_GPU_PRECISION, fp16)")
    w.add_argument("--autoscale", default=None, help="MAX,MIN processes (not recommended for models)")
    w.add_argument("--queues", "-Q", default=None,
                   help="queues to consume (default: ocr.<device>,ocr.any,ocr.webhooks)")
    w.add_argument("--finetune", action="store_true",
                   help="a fine-tuning worker: consume ocr.finetune (and ocr.webhooks), one job at a time "
                        "(-c 1), training with every core (--cpu-threads default: cores); needs ocrfleet[torch]")
    w.add_argument("--hostname", "-n", default=None)
    w.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics here")
    w.add_argument("--loglevel", "-l", default="INFO")
    w.add_argument("--events", action=argparse.BooleanOptionalAction, default=None,
                   help="send Celery task events for Flower (default: OCRFLEET_TASK_EVENTS, on)")
    w.add_argument("--dry-run", action="store_true", help="print the celery command and exit")
    w.set_defaults(func=cmd_worker)

    s = subparsers.add_parser("submit", help="enqueue a recognition job")
    s.add_argument("inputs", nargs="+", help="s3://, file:// or https:// references")
    s.add_argument("--model", dest="model_name", default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--pages", default=None, help="PDF pages, comma-separated 0-based indices")
    s.add_argument("--regions", default=None,
                   help="JSON, as Producer.submit's regions: with one input, its boxes/quads "
                        "([[x1,y1,x2,y2], ...] or [[[x,y]x4], ...]); else one list (or null) per input")
    s.add_argument("--webhook-url", default=None)
    s.add_argument("--priority", default="normal", help="high|normal|low|bulk or 0..9 (0 highest)")
    s.add_argument("--device", default="cpu", choices=["cpu", "gpu", "any"])
    s.add_argument("--job-id", default=None, help="idempotency key")
    s.add_argument("--metadata", default=None, help="JSON object echoed into the result")
    s.add_argument("--visualize", action="store_true", help="also write one PNG per line beside the result")
    s.add_argument("--mode", choices=["auto", "page", "line"], default=None,
                   help="inputs without regions: a page (detect every line), one line, or auto (default)")
    s.add_argument("--det-model", dest="det_model_name", default=None,
                   help="page jobs' detector (default: OCRFLEET_DEFAULT_DET_MODEL)")
    s.add_argument("--model-dir", dest="model_dir", default=None,
                   help="a custom recognition model: file:///dir or s3://bucket/prefix under the workers' "
                        "allowed_model_roots (ONNX + inference.yml, e.g. `ocrfleet finetune`'s output)")
    s.add_argument("--textline-orientation", action=argparse.BooleanOptionalAction, default=None,
                   help="page jobs: turn lines the classifier finds upside down (default off)")
    s.add_argument("--reading-order", dest="reading_order", choices=["columns"], default=None,
                   help="page jobs: read multi-column pages column by column (default: PaddleOCR's order)")
    s.add_argument("--wait", action="store_true",
                   help="wait and print the recognised text (exit 0 succeeded, 1 failed, 3 timed out)")
    s.add_argument("--json", action="store_true",
                   help="with --wait: print the job id and the result record as JSON instead")
    s.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    s.set_defaults(func=cmd_submit)

    f = subparsers.add_parser("submit-finetune", help="enqueue a fine-tuning job (run by `ocrfleet worker --finetune`)")
    f.add_argument("--labels", required=True, help="s3:// or file:// label file (rel_path<TAB>text; paths relative to it)")
    f.add_argument("--output", required=True, help="s3://bucket/prefix under allowed_model_roots: the model directory")
    f.add_argument("--model", dest="model_name", default=None, help="the model to start from (default: default_model)")
    f.add_argument("--val", default=None, help="validation label file (default: 10%% of --labels held out)")
    f.add_argument("--epochs", type=int, default=None)
    f.add_argument("--max-minutes", dest="max_minutes", type=float, default=None)
    f.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    f.add_argument("--keep", default=None,
                   help="label file of lines the model must keep reading: the run blends back towards the "
                        "stock weights until they lose at most --max-forgetting points")
    f.add_argument("--max-forgetting", dest="max_forgetting", type=float, default=None)
    f.add_argument("--lr", type=float, default=None)
    f.add_argument("--backbone-lr-scale", dest="backbone_lr_scale", type=float, default=None,
                   help="the backbone's learning rate is lr times this; 0 freezes it")
    f.add_argument("--augment", type=float, default=None)
    f.add_argument("--patience", type=int, default=None)
    f.add_argument("--width-scale", dest="width_scale", type=lambda v: "auto" if v == "auto" else float(v),
                   default=None, help="'auto' (default) or a horizontal stretch in [0.5, 3] (see ocrfleet finetune)")
    f.add_argument("--job-id", default=None)
    f.add_argument("--webhook-url", default=None)
    f.add_argument("--metadata", default=None, help="JSON object echoed into the result")
    f.add_argument("--priority", default="normal", help="high|normal|low|bulk or 0..9 (0 highest)")
    f.add_argument("--wait", action="store_true", help="wait and print the record (with model_dir) as JSON")
    f.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits (default 3600)")
    f.set_defaults(func=cmd_submit_finetune)

    r = subparsers.add_parser("result", help="print a job's stored result (JSON)")
    r.add_argument("job_id")
    r.add_argument("--text", action="store_true", help="only the recognised text")
    r.set_defaults(func=cmd_result)

    h = subparsers.add_parser("webhooks", help="webhook operations")
    hs = h.add_subparsers(dest="webhooks_cmd", required=True)
    d = hs.add_parser("dead-letter", help="failed deliveries")
    ds = d.add_subparsers(dest="dead_cmd", required=True)
    dl = ds.add_parser("list", help="print dead-lettered deliveries as JSON lines")
    dl.set_defaults(func=cmd_dead_list)
    dr = ds.add_parser("replay", help="enqueue dead-lettered deliveries again")
    dr.add_argument("ids", nargs="*", help="delivery ids (default with --all: every one)")
    dr.add_argument("--all", action="store_true")
    dr.set_defaults(func=cmd_dead_replay)

    m = subparsers.add_parser("messages", help="queue messages the workers could not decode")
    ms = m.add_subparsers(dest="messages_cmd", required=True)
    md = ms.add_parser("dead-letter", help="dead-lettered raw messages (reason, queue list, redacted body)")
    mds = md.add_subparsers(dest="dead_cmd", required=True)
    ml = mds.add_parser("list", help="print them as JSON lines, newest first")
    ml.add_argument("--limit", type=int, default=100)
    ml.set_defaults(func=cmd_messages_list)
    mp = mds.add_parser("purge", help="delete them all")
    mp.set_defaults(func=cmd_messages_purge)


def worker_argv(settings, args) -> tuple[list[str], dict[str, str]]:
    """The celery command line and the environment for ``ocrfleet worker``."""
    from ocrfleet.workers.models import parse_device

    device = args.device or settings.worker_device
    kind, index = parse_device(device)
    pool = args.pool or settings.worker_pool
    env = {"OCRFLEET_WORKER_DEVICE": device}
    if args.pool or pool != "prefork":
        env["OCRFLEET_WORKER_POOL"] = pool  # the worker app reads it (threads: load + batch in-process)
    if args.batch_wait_ms is not None:
        env["OCRFLEET_BATCH_MAX_WAIT_MS"] = str(args.batch_wait_ms)
    if args.batch_size is not None:
        env["OCRFLEET_BATCHER_MAX_LINES"] = str(args.batch_size)  # setting batcher_max_lines
    if args.models:
        env["OCRFLEET_WORKER_MODELS"] = args.models
    if args.cpu_threads or args.finetune:
        env["OCRFLEET_CPU_THREADS"] = str(args.cpu_threads or len(os.sched_getaffinity(0)))
    if args.tensorrt is not None:
        env["OCRFLEET_GPU_TENSORRT"] = "1" if args.tensorrt else "0"
    if args.precision:
        env["OCRFLEET_GPU_PRECISION"] = args.precision
    if kind == "gpu" and "CUDA_VISIBLE_DEVICES" not in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = str(index)  # pin the process to its GPU; it sees it as gpu:0
        env["OCRFLEET_WORKER_DEVICE"] = "gpu:0"
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if metrics_port:
        env["OCRFLEET_METRICS_PORT"] = str(metrics_port)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # ours: removed at worker shutdown
            env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ocrfleet-prom-")
            env["OCRFLEET_PROM_DIR_TEMP"] = "1"
    queues = args.queues or ",".join(settings.queue(q) for q in (
        ("finetune", "webhooks") if args.finetune else (kind, "any", "webhooks")))
    argv = [sys.executable, "-m", "celery", "-A", "ocrfleet.workers.app", "worker",
            "-P", pool, "-Q", queues, "-l", args.loglevel]
    events = settings.task_events if args.events is None else args.events
    env["OCRFLEET_TASK_EVENTS"] = "1" if events else "0"
    if events:
        argv.append("-E")
    if pool == "threads":
        argv += ["-c", str(args.concurrency or 8)]
    elif args.autoscale:
        argv += ["--autoscale", args.autoscale]
    else:
        argv += ["-c", str(args.concurrency or (1 if kind == "gpu" or args.finetune else os.cpu_count() or 1))]
    if args.hostname:
        argv += ["-n", args.hostname]
    return argv, env


def cmd_worker(args) -> int:
    from ocrfleet.config.settings import load_settings

    from ocrfleet.tasks.webhooks import check_secrets

    settings = load_settings()
    argv, env = worker_argv(settings, args)
    try:
        check_secrets(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(" ".join(f"{k}={v}" for k, v in env.items()), " ".join(argv))
        return 0
    if env["OCRFLEET_WORKER_DEVICE"].startswith("gpu"):
        from ocrfleet.recognition.devices import gpu_count

        if not gpu_count():  # else every child would fail to load its models, one log line each
            print("error: --device gpu, but no NVIDIA GPU is visible to this process (no /dev/nvidia* "
                  "device, or no CUDA build of paddlepaddle/onnxruntime); run `ocrfleet worker --device cpu`",
                  file=sys.stderr)
            return Exit.USAGE
    os.environ.update(env)
    os.execvp(argv[0], argv)
    return 1  # pragma: no cover


def _producer():
    from ocrfleet.producer import Producer

    return Producer()


def _inputs_and_regions(args):
    """Producer.submit's shapes: one input takes its own region list, several one list each."""
    regions = json.loads(args.regions) if args.regions else None
    return (args.inputs[0] if len(args.inputs) == 1 else args.inputs), regions


def _enqueue(args):
    """Submit; the job, or the exit status after printing why not."""
    priority = int(args.priority) if str(args.priority).isdigit() else args.priority

    def make():
        inputs, regions = _inputs_and_regions(args)
        return _producer().submit(
            inputs, model_name=args.model_name, batch_size=args.batch_size,
            pages=[int(p) for p in args.pages.split(",")] if args.pages else None, regions=regions,
            webhook_url=args.webhook_url, priority=priority, device=args.device, job_id=args.job_id,
            metadata=json.loads(args.metadata) if args.metadata else None, visualize=args.visualize,
            mode=args.mode, det_model_name=args.det_model_name, use_textline_orientation=args.textline_orientation,
            model_dir=args.model_dir, reading_order=args.reading_order)
    return _guarded(make)


def _guarded(make):
    """``make()`` (an enqueue), its refusals as exit statuses with one line on stderr."""
    import redis

    from ocrfleet.errors import OcrFleetError
    from ocrfleet.producer import EnqueueError, JobConflictError, SpecError

    try:
        return make()
    except JobConflictError as exc:
        return _fail(Exit.CONFLICT, exc)
    except (SpecError, ValueError, TypeError, OcrFleetError) as exc:
        return _fail(Exit.USAGE, exc)
    except (EnqueueError, redis.RedisError, OSError) as exc:  # the broker refused or is unreachable
        return _fail(Exit.UNAVAILABLE, exc)
    except RecursionError:  # json.loads of --metadata/--regions nested past Python's limit
        return _fail(Exit.USAGE, "--metadata/--regions JSON is nested too deeply")


def _fail(status: Exit, message) -> Exit:
    print(f"error: {message}", file=sys.stderr)
    return status


def _waited(job, timeout: float):
    """The job's record once finished, or Exit.TIMEOUT (said on stderr)."""
    try:
        record = job.result(timeout=timeout)
    except TimeoutError:
        record = None
    if record is None:
        _stop_waiting(job)
        return _fail(Exit.TIMEOUT, f"job {job.id} not finished after {timeout:g} s; it goes on: "
                                   f"`ocrfleet result {job.id}` prints its result once it is done")
    return record


def cmd_submit_finetune(args) -> int:
    from ocrfleet.jobs import finetune_spec

    priority = int(args.priority) if str(args.priority).isdigit() else args.priority
    job = _guarded(lambda: _producer().submit_finetune(
        args.labels, args.output, model_name=args.model_name, val=args.val, keep=args.keep, job_id=args.job_id,
        webhook_url=args.webhook_url, metadata=json.loads(args.metadata) if args.metadata else None,
        priority=priority, **{k: getattr(args, k) for k in finetune_spec.OPTIONS if getattr(args, k) is not None}))
    if isinstance(job, Exit) or not args.wait:
        if not isinstance(job, Exit):
            print(job.id)
        return job if isinstance(job, Exit) else Exit.OK
    record = _waited(job, args.timeout)
    if isinstance(record, Exit):
        return record
    print(json.dumps(record, ensure_ascii=False))
    if record.get("status") != "succeeded":
        error = record.get("error") or {}
        return _fail(Exit.FAILED, f"job {job.id} {record.get('status')}: [{error.get('code')}] {error.get('message')}")
    return Exit.OK


def cmd_submit(args) -> int:
    job = _enqueue(args)
    if isinstance(job, Exit):
        return job
    if not args.wait:
        print(job.id)
        return Exit.OK
    record = _waited(job, args.timeout)
    if isinstance(record, Exit):
        return record
    if args.json:
        print(job.id)
        print(json.dumps(record, ensure_ascii=False))
    if record.get("status") != "succeeded":
        error = record.get("error") or {}
        return _fail(Exit.FAILED, f"job {job.id} {record.get('status')}: [{error.get('code')}] {error.get('message')}")
    text = _stored_text(job)
    if isinstance(text, Exit):
        return text
    if not args.json or (record.get("summary") or {}).get("pages"):
        print(text)
    return Exit.OK


def _stop_waiting(job) -> None:
    """Unsubscribe from a timed-out job's result now: Celery would do it in AsyncResult.__del__
    at interpreter exit, where redis-py can no longer import and prints a traceback."""
    import gc

    backend = job.producer.app.backend
    for mapping in getattr(backend, "_pending_results", ()):  # celery 5.7's async backends
        for waiting in list((mapping.get(job.id) or {}).values()):
            backend.remove_pending_result(waiting)
    gc.collect()


def _stored(job):
    """The job's result object, or the exit status after printing why there is none."""
    from botocore.exceptions import ClientError

    from ocrfleet.storage.s3 import TransientStorageError

    try:
        return job.fetch_result()
    except ClientError:  # 404: not written (yet)
        status = job.status()
        return _fail(Exit.NOT_FOUND, f"no stored result for job {job.id} (status: {status})")
    except TransientStorageError as exc:
        return _fail(Exit.UNAVAILABLE, exc)


def _stored_text(job):
    result = _stored(job)
    return result if isinstance(result, Exit) else result_text(result)


def result_text(result: dict) -> str:
    """A result's text: each page's text under a header for page jobs, else one line per item."""
    if result.get("pages"):
        from ocrfleet.tasks.pages import page_texts

        return page_texts(result)
    return "\n".join(item.get("rec_text", "") for item in result.get("items") or [])


def cmd_result(args) -> int:
    result = _stored(_producer().job(args.job_id))
    if isinstance(result, Exit):
        return result
    print(result_text(result) if args.text else json.dumps(result, ensure_ascii=False, indent=1))
    if result.get("status") != "succeeded":
        error = result.get("error") or {}
        return _fail(Exit.FAILED, f"job {args.job_id} {result.get('status')}: [{error.get('code')}] "
                                  f"{error.get('message')}")
    return Exit.OK


def cmd_dead_list(args) -> int:
    from ocrfleet.config.settings import load_settings
    from ocrfleet.tasks import state

    for delivery_id, record in state.dead_letters(load_settings(), "webhooks").items():
        print(json.dumps({"delivery_id": delivery_id, **record}, ensure_ascii=False))
    return 0


def cmd_dead_replay(args) -> int:
    from ocrfleet.config.celery import make_celery
    from ocrfleet.config.settings import load_settings
    from ocrfleet.tasks import state, webhooks

    s = load_settings()
    records = state.dead_letters(s, "webhooks")
    ids = list(records) if args.all else args.ids
    if not ids:
        print("error: give delivery ids or --all", file=sys.stderr)
        return 2
    app = make_celery(s, main="ocrfleet-cli")
    missing = 0
    for delivery_id in ids:
        record = records.get(delivery_id)
        if record is None:
            print(f"not found: {delivery_id}", file=sys.stderr)
            missing += 1
            continue
        webhooks.enqueue(app, s, record["delivery"])
        state.remove_dead_letter(s, "webhooks", delivery_id)
        print(f"replayed {delivery_id}")
    return 1 if missing else 0


def cmd_messages_list(args) -> int:
    from ocrfleet.config.settings import load_settings
    from ocrfleet.tasks import state

    for record in state.dead_messages(load_settings(), args.limit):
        print(json.dumps(record, ensure_ascii=False))
    return 0


def cmd_messages_purge(args) -> int:
    from ocrfleet.config.settings import load_settings
    from ocrfleet.tasks import state

    s = load_settings()
    n = state.client(s).llen(s.key("dead", "messages"))
    state.client(s).delete(s.key("dead", "messages"))
    print(f"purged {n}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ocrfleet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
