#!/usr/bin/env python3
"""The whole fleet pipeline vs the in-process engine, on the same lines, in one interleaved run.

    . .venv/bin/activate
    python bench/fleet.py                                    # PP-OCRv5_mobile_rec, ~5 min on 2 cores
    python bench/fleet.py --model PP-OCRv6_tiny_rec --mode "prefork=--pool prefork -c 2" \
        --mode "prefork-noevents=--pool prefork -c 2 --no-events" --mode "threads=--pool threads -c 8 --batch-wait-ms 20"

Real servers, as the fleet tests start them (ocrfleet/testing/servers.py, imported): SeaweedFS
``weed mini`` (S3, SigV4), a private ``redis-server`` (broker + result backend), and one
``ocrfleet worker`` subprocess per mode, each on its own queues and key prefix, all started
before the first round:

* ``prefork``: ``--pool prefork -c 2`` (the default; one job per child, no cross-job batching)
* ``threads``: ``--pool threads -c 8 --batch-wait-ms 20`` (jobs in flight share batched model calls)
* ``threads-2t``: the same with ``--cpu-threads 2`` (the one inference thread uses both cores)
* more with ``--mode NAME=ARGS`` (e.g. ``--mode threads-nobatch="--pool threads -c 8 --batch-wait-ms -1"``)

Inputs: the real labelled lines of tests/data/real/rec (PNG/JPEG) uploaded to s3://inputs/.
Workloads: ``1-line`` jobs (``--jobs1`` jobs, the lines cycled) and ``50-line`` jobs
(``--jobs50`` jobs). Every job goes Producer.submit → Redis → worker (S3 GET, decode,
recognise, S3 PUT of the result with If-None-Match, backend record); no webhooks.

Per round, each workload runs on the engine and on every mode back to back (rotated order):

* ``engine``: one ``Recognizer`` in this process (``cpu_threads`` = ``--cpu-threads``, the
  workers' setting, batch ``--engine-batch``) on the same decoded lines, in one call: the
  lines/s to compare with; ``engine-Nt``: the same with ``cpu_threads`` = every core (the
  harder baseline: the engine alone on the whole machine, no S3 or Redis server beside it).
* throughput: the worker's queue consumer is cancelled, all jobs are enqueued, the consumer is
  added back; the clock runs from the first job's start in the worker until the last job's
  record is in the result backend: jobs/s and lines/s of Redis → worker → S3 + backend (the
  producer's own cost is outside, as on a separate machine; the end is found by polling one
  Redis EXISTS, not by parsing every record in this process).
* latency: ``--clients`` closed-loop clients (each submits a job and waits for its record,
  ``--latency-jobs`` jobs) and one serial client: p50/p99 of submit → record.

Every fleet result's text is checked against the engine's. The machine is shared: compare the
ratios inside one run (``ratio`` = fleet lines/s / engine lines/s, median over rounds), not
absolute numbers across runs. The S3 server (SeaweedFS) and Redis run on the same cores as the
workers, so their CPU per job counts against the fleet (on a real deployment they are elsewhere).
Prints a table; writes JSON to bench/results/fleet-*.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from ocrfleet.testing.servers import RedisServer, WeedS3, Worker  # noqa: E402  (run with PYTHONPATH=$PWD)

DATA = REPO / "tests" / "data" / "real" / "rec"
DEFAULT_MODES = {
    "prefork": "--pool prefork -c 2",
    "threads": "--pool threads -c 8 --batch-wait-ms 20",
    "threads-2t": "--pool threads -c 8 --batch-wait-ms 20 --cpu-threads 2",
}


def real_lines(s3) -> tuple[list[str], list]:
    from ocrfleet.recognition.inputs import decode_image_bytes

    refs, images = [], []
    for tsv in sorted(DATA.glob("*/labels.tsv")):
        for line in tsv.read_text().splitlines():
            path = tsv.parent / line.split("\t", 1)[0]
            key = f"lines/{tsv.parent.name}/{path.name}"
            data = path.read_bytes()
            s3.put_object(Bucket="inputs", Key=key, Body=data)
            refs.append(f"s3://inputs/{key}")
            images.append(decode_image_bytes(data, str(path)))
    return refs, images


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and every live descendant (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == pid]
    return total


def pct(values, q):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


class Mode:
    def __init__(self, name, argv, base, model, cpu_threads):
        run = uuid.uuid4().hex[:6]
        from ocrfleet.config.settings import to_env
        from ocrfleet.producer import Producer

        self.name = name
        self.settings = base.replace(queue_prefix=f"{name}-{run}.", key_prefix=f"bench-{name}-{run}",
                                     results_prefix=f"bench-{name}-{run}")
        self.producer = Producer(self.settings)
        self.queue = self.settings.queue("cpu")
        args = shlex.split(argv)
        conc = args[args.index("-c") + 1] if "-c" in args else "1"
        extra = [a for i, a in enumerate(args) if a != "-c" and (i == 0 or args[i - 1] != "-c")]
        env = to_env(self.settings)
        if "--cpu-threads" not in args:
            env["OCRFLEET_CPU_THREADS"] = str(cpu_threads)
        self.worker = Worker(env, name=f"{name}{run}", concurrency=int(conc), models=model, extra=extra)
        self.argv = argv

    def start(self):
        self.worker.start(self.producer.app, timeout=120)
        self.dest = [k for r in self.producer.app.control.ping(timeout=1.0) for k in r
                     if k.startswith(self.worker.name + "@")]
        return self

    def pause(self):
        self.producer.app.control.cancel_consumer(self.queue, destination=self.dest, reply=True, timeout=5)

    def resume(self):
        self.producer.app.control.add_consumer(self.queue, destination=self.dest, reply=True, timeout=5)


def check(fulls, mode, want_texts, errors):
    bad = 0
    for full, want in zip(fulls, want_texts):
        got = [it["rec_text"] for it in full.get("items", [])]
        if full["status"] != "succeeded" or got != want:
            bad += 1
    if bad:
        errors.append(f"{mode}: {bad} jobs differ from the engine")
    return bad


def wait_records(mode: Mode, jobs, timeout: float, poll: float = 0.02) -> float:
    """The time the last job's backend record appeared. Polls one EXISTS over the record keys
    (a producer waiting with ``Job.result()`` would parse every record in this process, on
    the worker's cores: a real producer runs elsewhere)."""
    backend = mode.producer.app.backend
    r = backend.client
    keys = [backend.get_key_for_task(j.id) for j in jobs]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if r.exists(*keys) == len(keys):
            return time.time()
        time.sleep(poll)
    raise TimeoutError(f"{mode.name}: records missing after {timeout} s")


def throughput(mode: Mode, model, inputs_per_job, want_texts, errors, servers):
    mode.pause()
    jobs = [mode.producer.submit(refs, model_name=model, batch_size=8) for refs in inputs_per_job]
    procs = {"worker": mode.worker.proc.pid, **servers}
    cpu0 = {k: cpu_seconds(pid) for k, pid in procs.items()}
    mode.resume()  # the consumer comes back within ~1 s (BRPOP cycle): time from the first start
    t_end = wait_records(mode, jobs, timeout=600)
    cpu = {k: round(1000 * (cpu_seconds(pid) - cpu0[k]) / len(jobs), 2) for k, pid in procs.items()}
    records = [j.result(timeout=60) for j in jobs]
    fulls = [j.fetch_result() for j in jobs]
    dt = t_end - min(f["started_at"] for f in fulls)
    failed = sum(r["status"] != "succeeded" for r in records)
    if failed:
        errors.append(f"{mode.name}: {failed} jobs failed: {records[0]}")
    check(fulls, mode.name, want_texts, errors)
    lines = sum(len(x) for x in inputs_per_job)
    return {"jobs": len(jobs), "lines": lines, "seconds": dt, "jobs_per_s": len(jobs) / dt, "lines_per_s": lines / dt,
            "cpu_ms_per_job": cpu}


def latency(mode: Mode, model, inputs_per_job, clients):
    todo = list(inputs_per_job)
    lock = threading.Lock()
    lat = []

    def client():
        while True:
            with lock:
                if not todo:
                    return
                refs = todo.pop()
            t = time.perf_counter()
            rec = mode.producer.submit(refs, model_name=model, batch_size=8).result(timeout=600)
            d = time.perf_counter() - t
            with lock:
                lat.append(d if rec["status"] == "succeeded" else float("inf"))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    return {"clients": clients, "jobs": len(lat), "jobs_per_s": len(lat) / dt,
            "p50_ms": 1000 * pct(lat, 50), "p99_ms": 1000 * pct(lat, 99)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="PP-OCRv5_mobile_rec")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs1", type=int, default=184, help="1-line jobs per throughput run")
    ap.add_argument("--jobs50", type=int, default=8, help="50-line jobs per throughput run")
    ap.add_argument("--latency-jobs", type=int, default=64, help="1-line jobs per latency run")
    ap.add_argument("--clients", type=int, default=8, help="closed-loop clients in the latency run")
    ap.add_argument("--cpu-threads", type=int, default=1, help="intra-op threads: engine and every worker process")
    ap.add_argument("--engine-batch", type=int, default=16)
    ap.add_argument("--mode", action="append", default=[], help="NAME=ocrfleet worker args (replaces the defaults)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from ocrfleet.config.settings import load_settings
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.recognition.sources import resolve

    modes_argv = dict(m.split("=", 1) for m in args.mode) if args.mode else DEFAULT_MODES
    s3, redis_server = WeedS3().start(), RedisServer().start()
    modes: list[Mode] = []
    try:
        refs, images = real_lines(s3.client())
        base = load_settings(env={}, broker_url=f"{redis_server.url}/0", result_backend=f"{redis_server.url}/1",
                             s3_endpoint_url=s3.endpoint, s3_access_key=s3.ak, s3_secret_key=s3.sk,
                             results_bucket="ocr-results", default_model=args.model, worker_models=[args.model],
                             cpu_threads=args.cpu_threads, log_level="WARNING", visibility_timeout=1800,
                             task_time_limit=900, task_soft_time_limit=800)
        t = time.perf_counter()
        engines = {"engine": Recognizer(resolve(args.model), EngineOptions(cpu_threads=args.cpu_threads))}
        cores = os.cpu_count() or 1
        if cores > args.cpu_threads:  # the engine given the whole machine: the harder baseline
            engines[f"engine-{cores}t"] = Recognizer(resolve(args.model), EngineOptions(cpu_threads=cores))
        for e in engines.values():
            e.recognize(images[:4], batch_size=args.engine_batch)
        engine = engines["engine"]
        print(f"engines loaded in {time.perf_counter() - t:.1f} s ({engine.backend_name})", flush=True)
        for name, mode_argv in modes_argv.items():
            t = time.perf_counter()
            modes.append(Mode(name, mode_argv, base, args.model, args.cpu_threads).start())
            print(f"worker {name} ({mode_argv}) ready in {time.perf_counter() - t:.1f} s", flush=True)

        n = len(refs)
        workloads = {
            "1-line": [[refs[i % n]] for i in range(args.jobs1)],
            "50-line": [[refs[(j * 50 + i) % n] for i in range(50)] for j in range(args.jobs50)],
        }
        index = {r: i for i, r in enumerate(refs)}
        alone = engine.recognize(images, batch_size=1)
        want = {w: [[alone[index[r]][0] for r in job] for job in jobs] for w, jobs in workloads.items()}

        rows: dict = {}
        errors: list[str] = []
        for rnd in range(args.rounds):
            for w, jobs in workloads.items():
                lines = [images[index[r]] for job in jobs for r in job]
                names = list(engines) + [m.name for m in modes]
                k = rnd % len(names)
                for name in names[k:] + names[:k]:
                    if name in engines:
                        t = time.perf_counter()
                        out = engines[name].recognize(lines, batch_size=args.engine_batch)
                        dt = time.perf_counter() - t
                        if [x for x, _ in out] != [x for job in want[w] for x in job]:
                            errors.append("engine batched != engine alone")
                        res = {"lines": len(lines), "seconds": dt, "lines_per_s": len(lines) / dt,
                               "jobs_per_s": len(jobs) / dt}
                    else:
                        mode = next(m for m in modes if m.name == name)
                        res = throughput(mode, args.model, jobs, want[w], errors,
                                         {"s3": s3.proc.pid, "redis": redis_server.proc.pid})
                    rows.setdefault((w, name), []).append(res)
                    cpu = res.get("cpu_ms_per_job")
                    print(f"round {rnd} {w:8s} {name:16s} {res['lines_per_s']:8.1f} lines/s"
                          + (f"  CPU ms/job {cpu}" if cpu else ""), flush=True)
            for m in modes:  # latency: closed loop with --clients, and serial
                for clients, key in ((args.clients, "latency"), (1, "latency-serial")):
                    jobs = [[refs[i % n]] for i in range(args.latency_jobs if clients > 1 else args.latency_jobs // 2)]
                    res = latency(m, args.model, jobs, clients)
                    rows.setdefault((key, m.name), []).append(res)
                    print(f"round {rnd} {key:14s} {m.name:10s} p50 {res['p50_ms']:6.1f} ms "
                          f"p99 {res['p99_ms']:6.1f} ms  {res['jobs_per_s']:.1f} jobs/s", flush=True)

        def med(key, name, field):
            vals = [r[field] for r in rows.get((key, name), []) if r.get(field) is not None]
            return statistics.median(vals) if vals else None

        summary = []
        print(f"\n{args.model}, {platform.node()}, {os.cpu_count()} cores, cpu_threads={args.cpu_threads}, "
              f"{args.rounds} rounds (medians)")
        full = next((e for e in engines if e != "engine"), "engine")

        def ratio(w, name, base):  # per round (the engines and modes ran side by side), median
            return statistics.median(a["lines_per_s"] / b["lines_per_s"]
                                     for a, b in zip(rows[(w, name)], rows[(w, base)]))
        hdr = (f"{'workload':9s} {'mode':16s} {'jobs/s':>8s} {'lines/s':>8s} {'vs engine':>9s} {'vs ' + full:>12s} "
               f"{'p50 ms':>7s} {'p99 ms':>7s} {'serial p50':>10s} {'serial p99':>10s}")
        print(hdr)
        print("-" * len(hdr))
        for w in workloads:
            for name in list(engines) + [m.name for m in modes]:
                lps = med(w, name, "lines_per_s")
                row = {"workload": w, "mode": name, "argv": modes_argv.get(name, f"Recognizer batch {args.engine_batch}"),
                       "jobs_per_s": med(w, name, "jobs_per_s"), "lines_per_s": lps,
                       "ratio": ratio(w, name, "engine"), "ratio_all_cores": ratio(w, name, full),
                       "runs": rows[(w, name)]}
                if w == "1-line" and name not in engines:
                    for key, tag in (("latency", ""), ("latency-serial", "serial_")):
                        for f in ("p50_ms", "p99_ms", "jobs_per_s"):  # jobs_per_s: closed loop
                            row[f"{tag or 'closed_'}{f}" if f == "jobs_per_s" else f"{tag}{f}"] = med(key, name, f)
                    row["latency_runs"] = rows[("latency", name)] + rows[("latency-serial", name)]
                summary.append(row)

                def f(v, fmt="8.1f"):
                    return format(v, fmt) if v is not None else " " * int(fmt.split(".")[0])
                print(f"{w:9s} {name:16s} {f(row['jobs_per_s'])} {f(lps)} {row['ratio']:9.2f} "
                      f"{row['ratio_all_cores']:12.2f} "
                      f"{f(row.get('p50_ms'), '7.1f')} {f(row.get('p99_ms'), '7.1f')} "
                      f"{f(row.get('serial_p50_ms'), '10.1f')} {f(row.get('serial_p99_ms'), '10.1f')}")
        print(f"\nCPU per job (ms, medians; {cores} cores give {1000 * cores} ms of CPU per second):")
        for w in workloads:
            for m in modes:
                runs = [r["cpu_ms_per_job"] for r in rows[(w, m.name)]]
                med_cpu = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"  {w:9s} {m.name:16s} " + "  ".join(f"{k} {v:6.2f}" for k, v in med_cpu.items())
                      + f"  total {sum(med_cpu.values()):6.2f}")
        print(f"vs engine: / the in-process engine at cpu_threads={args.cpu_threads} (the workers' setting); "
              f"vs {full}: / the engine using all {cores} cores; medians of per-round ratios")
        print(f"latency: {args.clients} closed-loop clients x {args.latency_jobs} 1-line jobs; serial: 1 client")
        for e in errors:
            print("ERROR:", e)
        out = Path(args.out or REPO / "bench" / "results" / f"fleet-{time.strftime('%Y%m%d-%H%M%S')}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"model": args.model, "host": platform.node(), "cores": os.cpu_count(),
                                   "args": vars(args), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                                   "backend": engine.backend_name, "rows": summary, "errors": errors,
                                   "time": time.time()}, indent=1))
        print(f"wrote {out}")
        return 1 if errors else 0
    finally:
        for m in modes:
            m.worker.stop()
        redis_server.stop()
        s3.stop()


if __name__ == "__main__":
    sys.exit(main())
