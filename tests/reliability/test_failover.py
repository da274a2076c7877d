"""Broker failover through Redis Sentinel: the primary is SIGKILLed during a 500-job run.

Real servers on loopback: a primary and a replica (passwords, no AOF), three
``redis-server --sentinel`` (1 s down-after), SeaweedFS S3 and two ``ocrfleet worker``
subprocesses (-c 1 each); broker, result backend and the fleet's own keys all go through
``sentinel://`` URLs. Two producers submit 250 one-line jobs each, concurrently:

* ``plain``: the default, a submit returns once the primary took the job;
* ``durable``: ``enqueue_min_replicas=1``, a submit returns once the replica holds it (WAIT).

Redis replication is asynchronous and on loopback the replica is normally < 1 ms behind, so a
bare kill would show almost nothing of what async replication can lose. To measure that window
on purpose, the replication link is cut (the primary drops its replica connection and the
replica cannot re-authenticate) for ``LAG_S`` before the kill: everything the primary took in
that window is what a real lagging replica would miss. Then the primary is SIGKILLed, Sentinel
promotes the replica, the replica's access is restored and a fresh replica joins the new
primary (the dead box coming back), so durable submits can be acknowledged again.

Measured: jobs completed / lost, executions (a job run twice), result objects, the sentinel
failover time and the stall (kill -> first job finishing on the new primary). Asserted: nothing
the durable producer accepted is lost; what the plain producer lost was accepted inside the
lag window; one result object per job; no worker process exited. Figures are printed; with
``OCRFLEET_FAILOVER_REPORT=path`` they are also written there as JSON (docs/failover.md is
written from that file by hand: the test never rewrites tracked files)."""
from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path

import pytest

from ocrfleet.config.redis import client_for
from ocrfleet.producer import Producer

from .helpers import REPORT, backend_records, make_settings, result_objects
from .sentinel import SentinelGroup

JOBS_PER_PRODUCER = 250
KILL_AFTER = 200     # submits accepted (both producers) before the replication link is cut
LAG_S = 0.5          # the replica misses everything of the last LAG_S before the kill
PACE_S = 0.01        # between submits of one producer
REPLICATION_SLACK_S = 0.05


@pytest.fixture()
def sentinels():
    group = SentinelGroup().start()
    yield group
    # the producers' AsyncResults (one per submit, in reference cycles) unsubscribe from the result
    # backend when collected: collect them while it is still up, or each one retries the dead
    # sentinels for a minute at interpreter exit (Celery's Redis result consumer)
    gc.collect()
    group.stop()


class Submitter(threading.Thread):
    """Submits ``n`` jobs like a careful caller: a submit that raises is retried with the same
    job_id (idempotent) until it is accepted."""

    def __init__(self, producer: Producer, prefix: str, n: int, ref: str, counter: list):
        super().__init__(daemon=True)
        self.producer, self.prefix, self.n, self.ref, self.counter = producer, prefix, n, ref, counter
        self.accepted: dict[str, float] = {}  # job_id -> when submit returned
        self.refused: list[tuple[str, str]] = []  # (job_id, error) of submits that raised
        self.lock = threading.Lock()

    def run(self):
        for i in range(self.n):
            job_id = f"{self.prefix}-{i:04d}"
            spec = self.producer.build_spec(self.ref, job_id=job_id)
            while True:
                try:
                    self.producer.submit_spec(spec)
                    break
                except Exception as exc:  # noqa: BLE001 - NotReplicatedError, broker errors: retry
                    self.refused.append((job_id, f"{type(exc).__name__}: {str(exc)[:120]}"))
                    time.sleep(0.2)
            with self.lock:
                self.accepted[job_id] = time.time()
                self.counter[0] += 1
            time.sleep(PACE_S)


def broker_busy(broker, settings) -> int:
    """Messages still queued or delivered-but-unacknowledged on the (current) primary."""
    from ocrfleet.workers.metrics import priority_lists

    pipe = broker.pipeline(transaction=False)
    for _, name in priority_lists(settings, "cpu"):
        pipe.llen(name)
    pipe.hlen("unacked")
    return sum(pipe.execute())


def executions(workers) -> dict[str, int]:
    """job.finished log lines per job, over every worker's JSON log (independent of Redis)."""
    out: dict[str, int] = {}
    for w in workers:
        for line in Path(w.logfile).read_text(errors="replace").splitlines():
            if '"job.finished"' not in line:
                continue
            try:
                job_id = json.loads(line[line.index("{"):])["job_id"]
            except (ValueError, KeyError):
                continue
            out[job_id] = out.get(job_id, 0) + 1
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_primary_killed_during_500_jobs(sentinels, weed, fleet, line_ref):
    g = sentinels
    settings = make_settings(
        "redis://unused", weed, broker_url=g.url(0), result_backend=g.url(1),
        sentinel_master_name=g.master_name, sentinel_password=g.sentinel_password,
        visibility_timeout=10, enqueue_replica_timeout_ms=500)
    plain = Producer(settings)
    durable = Producer(settings.replace(enqueue_min_replicas=1))
    workers = [fleet.worker(settings, plain, concurrency=1) for _ in range(2)]
    pids = [w.proc.pid for w in workers]
    backend = client_for(settings, "backend")
    broker = client_for(settings, "broker")

    counter = [0]
    subs = [Submitter(plain, "fo-plain", JOBS_PER_PRODUCER, line_ref, counter),
            Submitter(durable, "fo-durable", JOBS_PER_PRODUCER, line_ref, counter)]
    all_ids = [f"{s.prefix}-{i:04d}" for s in subs for i in range(s.n)]
    t0 = time.time()
    for s in subs:
        s.start()
    while counter[0] < KILL_AFTER:
        time.sleep(0.01)

    # cut replication: the replica cannot re-authenticate, the primary drops its link. A job
    # accepted just before the cut may still be on its way to the replica (async): the window
    # opens REPLICATION_SLACK_S earlier
    t_cut = time.time() - REPLICATION_SLACK_S
    g.replica.client().config_set("masterauth", "wrong-password")
    g.primary.client().client_kill_filter(_type="replica")
    time.sleep(LAG_S)
    done_at_kill = set(backend_records(settings, all_ids, backend))
    old = g.kill_primary()
    t_kill = time.time()  # SIGKILL delivered and reaped: nothing is accepted by the old primary after this
    g.replica.client().config_set("masterauth", g.password)
    new = g.wait_new_primary(old)
    t_failover = time.time()
    g.add_replica(port=old)  # the dead box returns empty and resyncs from the new primary

    window = {j for s in subs for j, t in s.accepted.items() if t_cut <= t <= t_kill}
    first_after = None
    timeline: list[tuple[float, int]] = []  # (seconds after the kill, jobs with a record)
    deadline = time.time() + 150
    while time.time() < deadline:
        records = backend_records(settings, all_ids, backend)
        now = time.time()
        timeline.append((now - t_kill, len(records)))
        if first_after is None and set(records) - done_at_kill:
            first_after = now
        if not any(s.is_alive() for s in subs) and broker_busy(broker, settings) == 0:
            time.sleep(1.0)  # nothing queued, nothing in flight: what has no record now never will
            if broker_busy(broker, settings) == 0:
                records = backend_records(settings, all_ids, backend)
                break
        time.sleep(0.1)
    t_end = time.time()
    for s in subs:
        s.join(5)

    objects = result_objects(weed.client(), settings)
    runs = executions(workers)
    figures = {"jobs": len(all_ids), "kill_after_accepted": KILL_AFTER, "lag_window_s": LAG_S,
               "failover_s": round(t_failover - t_kill, 2),
               "stall_s": round((first_after or t_end) - t_kill, 2),
               "drain_after_kill_s": round(t_end - t_kill, 2), "total_s": round(t_end - t0, 1),
               "records_at_kill": len(done_at_kill),
               "records_after_kill": {f"+{s}s": next((n for dt, n in timeline if dt >= s), len(records))
                                      for s in (5, 10, 20, 30)}}
    for s in subs:
        ids = [f"{s.prefix}-{i:04d}" for i in range(s.n)]
        mine = set(ids) & window
        # a job with its result object in S3 ran: only its backend record (an async-replicated
        # write to the result backend) was lost in the failover. Lost = neither record nor object.
        no_record = [j for j in ids if j in s.accepted and j not in records]
        lost = [j for j in no_record if f"{settings.results_prefix}/{j}.json" not in objects]
        figures[s.prefix.split("-")[1]] = {
            "accepted": len(s.accepted), "refused_submits": len(s.refused),
            "accepted_in_lag_window": len(mine), "completed": sum(1 for j in ids if j in records),
            "lost": len(lost), "lost_outside_window": len(set(lost) - window),
            "result_objects": sum(1 for j in ids if f"{settings.results_prefix}/{j}.json" in objects),
            "record_lost_result_kept": len(no_record) - len(lost),
            "run_twice": sum(1 for j in ids if runs.get(j, 0) > 1),
            "refusals": sorted({e[:100] for _, e in s.refused})}
        for j in sorted(set(lost) - window):  # diagnostics: when it was accepted, what workers logged
            print("LOST OUTSIDE THE WINDOW", j, round(s.accepted[j] - t_cut, 3), [
                l[:300] for w in workers for l in Path(w.logfile).read_text(errors="replace").splitlines() if j in l])
    print("\nFAILOVER FIGURES " + json.dumps(figures, indent=1))
    p, d = figures["plain"], figures["durable"]
    REPORT["faults"].append({  # docs/reliability.md (written only by python -m tests.reliability.report)
        "scenario": "Sentinel failover during 500 jobs (details: docs/failover.md)",
        "action": f"primary SIGKILLed after {KILL_AFTER} submits, its replication link cut {LAG_S} s before; "
                  "replica promoted by 3 sentinels; 2 workers -c 1; plain and durable (enqueue_min_replicas=1) "
                  "producers, 250 jobs each",
        "outcome": f"failover {figures['failover_s']} s, stall {figures['stall_s']} s; plain: {p['completed']} "
                   f"completed, {p['lost']} lost (all accepted in the cut), {p['run_twice']} run twice; durable: "
                   f"{d['completed']} completed, {d['lost']} lost, {d['refused_submits']} submit(s) refused and "
                   f"retried, {d['run_twice']} run twice; 1 result object per completed job; 0 worker restarts"})
    if os.environ.get("OCRFLEET_FAILOVER_REPORT"):
        Path(os.environ["OCRFLEET_FAILOVER_REPORT"]).write_text(json.dumps(figures, indent=1) + "\n")

    assert [w.proc.poll() for w in workers] == [None, None], "a worker exited over the failover"
    logs = "".join(Path(w.logfile).read_text(errors="replace") for w in workers)
    assert "sentinel://" in logs and g.password not in logs and g.sentinel_password not in logs
    assert [w.proc.pid for w in workers] == pids
    plain_f, durable_f = figures["plain"], figures["durable"]
    assert plain_f["accepted"] == durable_f["accepted"] == JOBS_PER_PRODUCER
    # kombu takes a message (BRPOP) and records it as unacked in a second command: a job one of
    # the worker processes took just as the primary died can be lost whatever the producer did
    # (docs/failover.md, "not guaranteed"); at most one per worker process. Seen: 1 in ~20 runs.
    in_flight = len(workers)
    assert durable_f["lost"] <= in_flight, f"the durable producer lost jobs: {durable_f}"
    assert plain_f["lost_outside_window"] <= in_flight, f"jobs lost outside the lag window: {plain_f}"
    assert all(r["status"] == "succeeded" for r in records.values()), \
        {r["status"] for r in records.values()}
    # every completed job has exactly one result object, and no object belongs to an unknown job
    expected = {f"{settings.results_prefix}/{j}.json" for j in records}
    assert expected <= set(objects)
    assert set(objects) <= {f"{settings.results_prefix}/{j}.json" for j in all_ids}


def test_sentinel_settings_reach_celery_and_clients():
    """Without servers: sentinel:// URLs need the master name; Celery gets it (and the sentinel
    password) in both transport options; the fleet's own clients are Sentinel-managed; the
    passwords of every ;-separated entry are masked in public()."""
    from redis.sentinel import SentinelConnectionPool

    from ocrfleet.config.celery import celery_config
    from ocrfleet.config.redis import parse_sentinel_url
    from ocrfleet.config.settings import load_settings

    url = "sentinel://:pw@10.0.0.1:26379/2;sentinel://:pw@10.0.0.2:26380/2"
    s = load_settings(env={}, broker_url=url, result_backend=url.replace("/2", "/3"),
                      sentinel_master_name="mymaster", sentinel_password="spw")
    conf = celery_config(s)
    for opts in (conf["broker_transport_options"], conf["result_backend_transport_options"]):
        assert opts["master_name"] == "mymaster" and opts["sentinel_kwargs"]["password"] == "spw"
    assert parse_sentinel_url(s.result_backend) == {
        "hosts": [("10.0.0.1", 26379), ("10.0.0.2", 26380)], "db": 3, "username": None, "password": "pw"}
    for role in ("redis", "broker", "backend"):
        assert isinstance(client_for(s, role).connection_pool, SentinelConnectionPool)
    public = json.dumps(s.public())
    assert "pw@" not in public and "spw" not in public and public.count(":***@10.0.0.") >= 4
    assert "master_name" not in celery_config(load_settings(env={}))["broker_transport_options"]
    with pytest.raises(ValueError, match="sentinel_master_name"):
        celery_config(s.replace(sentinel_master_name=""))


def test_durable_submit_without_replica_is_refused_and_released(redis_aof, weed, line_ref):
    """enqueue_min_replicas=1 on a Redis without replicas: the submit raises NotReplicatedError
    (code NOT_REPLICATED) after the timeout and the job_id claim is released; with the setting
    off the same job is accepted."""
    from ocrfleet.producer.replication import NotReplicatedError

    settings = make_settings(redis_aof.url, weed, enqueue_min_replicas=1, enqueue_replica_timeout_ms=100)
    producer = Producer(settings)
    with pytest.raises(NotReplicatedError, match="0 of 1 replica") as err:
        producer.submit(line_ref, job_id="durable-1")
    assert err.value.code == "NOT_REPLICATED"
    r = client_for(settings)
    assert not r.exists(settings.key("job", "durable-1"))
    job = Producer(settings.replace(enqueue_min_replicas=0)).submit(line_ref, job_id="durable-1")
    assert job.created and not r.get(settings.key("job", "durable-1")).endswith(b":durable")
    del producer, job
    gc.collect()  # AsyncResults unsubscribe now, not at exit against a stopped Redis (see sentinels())
