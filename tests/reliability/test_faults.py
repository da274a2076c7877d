"""Faults against the real servers: a whole worker SIGKILLed mid-job, Redis restarted during a
run of 200 jobs, the S3 server down for ~25 s, webhook receivers down / slow / failing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from ocrfleet.config.settings import to_env
from ocrfleet.producer import Producer
from ocrfleet.jobs.signing import verify_signature
from ocrfleet.tasks import state

from ocrfleet.testing.servers import free_port
from ocrfleet.jobs import contract as keys

from .helpers import (REPO, REPORT, SECRET, deliveries, line_png, make_settings, read_objects, result_objects,
                      wait_records)
from .servers import Origin, Redis, Weed


def _wait_running(settings, job_id, timeout=30.0) -> int:
    r = redis.Redis.from_url(settings.redis)
    deadline = time.time() + timeout
    while time.time() < deadline:
        where = r.get(keys.running_key(settings, job_id))
        if where:
            return int(where.decode().rsplit(":", 1)[1])
        time.sleep(0.01)
    raise TimeoutError(f"job {job_id} did not start")


def _one_object_each(weed, settings, ids) -> dict:
    objects = result_objects(weed.client(), settings)
    assert set(objects) == {keys.result_key(settings, i) for i in ids}
    bodies = read_objects(weed.client(), settings, objects)  # every object parses: nothing half-written
    assert all(b["status"] == "succeeded" and b["job_id"] in ids for b in bodies.values())
    return bodies


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_whole_worker_sigkill_mid_job_restored_after_visibility_timeout(weed, redis_aof, fleet, origin):
    """Parent + children SIGKILLed (node loss): the unacked job comes back after the visibility
    timeout through the restore sweep (unacked_restore_interval=1, throttle 1) and a restarted
    worker finishes it: one result object, one final status, webhook with one delivery id."""
    settings = make_settings(redis_aof.url, weed, visibility_timeout=10, task_time_limit=8, task_soft_time_limit=7)
    producer = Producer(settings)
    weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
    a = fleet.worker(settings, producer, concurrency=1, name="victim")
    hook = f"/ok/whole-kill-{time.time_ns()}"
    job = producer.submit("s3://inputs/rel/line.png", regions=[[0, 0, 200, 32]] * 200,
                          webhook_url=origin.url + hook, job_id=f"wholekill-{time.time_ns()}")
    pid = _wait_running(settings, job.id)
    assert pid in a.children()
    os.killpg(a.proc.pid, signal.SIGKILL)  # the whole worker: parent and every child
    a.proc.wait(10)
    t_kill = time.time()
    time.sleep(0.5)
    assert job.status() == "running"  # the dead worker's running mark; the message sits in unacked
    fleet.worker(settings, producer, concurrency=1, name="restarted")
    record = job.result(timeout=60)
    recovered = time.time() - t_kill
    assert record["status"] == "succeeded" and record["summary"]["lines"] == 200, record
    assert deliveries(settings, [job.id])[job.id] == 2
    _one_object_each(weed, settings, [job.id])
    posts = origin.wait_posts(hook, 1)
    time.sleep(1.0)
    posts = origin.posts(hook)
    assert len({p["headers"]["webhook-id"] for p in posts}) == 1
    for p in posts:
        verify_signature(SECRET, p["headers"], p["body"])
    REPORT["faults"].append({
        "scenario": "whole worker SIGKILLed mid-job (parent + children)",
        "action": "killpg(SIGKILL) while a 200-line job ran; a new worker started; visibility_timeout=10 s, "
                  "unacked_restore_interval=1 s, throttle 1",
        "outcome": f"restored and finished {recovered:.1f} s after the kill; deliveries=2, 1 result object, "
                   f"status succeeded, {len(posts)} webhook POST(s) with one webhook-id"})


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_redis_restart_during_200_jobs(weed, fleet, tmp_path):
    """redis-server (AOF, appendfsync always) SIGKILLed and restarted on the same port/dir while
    200 jobs are being submitted and run: the producer and the worker reconnect by themselves,
    every job completes, one result object each."""
    server = Redis(aof=True).start()
    try:
        settings = make_settings(server.url, weed, visibility_timeout=10, task_time_limit=8, task_soft_time_limit=6)
        weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
        producer = Producer(settings)
        w = fleet.worker(settings, producer, concurrency=2, name="redisrestart")
        ids, errors = [], []

        def submit_all():
            for i in range(200):
                try:
                    ids.append(producer.submit("s3://inputs/rel/line.png", job_id=f"rr-{i:03d}").id)
                except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                    errors.append(f"{i}: {type(exc).__name__}: {exc}")
                time.sleep(0.02)

        t0 = time.time()
        th = threading.Thread(target=submit_all)
        th.start()
        while len(ids) < 80 and th.is_alive():
            time.sleep(0.01)
        server.kill()
        t_down = time.time()
        time.sleep(1.0)
        server.proc = subprocess.Popen(server.args(), start_new_session=True, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        server_up = None
        while server_up is None:
            try:
                server.client().ping()
                server_up = time.time()
            except redis.ConnectionError:
                time.sleep(0.05)
        th.join(60)
        assert not errors, errors[:5]
        assert len(ids) == 200
        records = wait_records(settings, ids, timeout=120)
        elapsed = time.time() - t0
        statuses = {}
        for rec in records.values():
            statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
        assert statuses == {"succeeded": 200}, (statuses, w.tail())
        _one_object_each(weed, settings, ids)
        counts = deliveries(settings, ids)
        again = sorted(j for j, n in counts.items() if n > 1)
        assert w.proc.poll() is None, "the worker exited instead of reconnecting"
        REPORT["faults"].append({
            "scenario": "Redis restart during a run of 200 jobs",
            "action": f"redis-server (appendonly yes, appendfsync always) SIGKILLed after {80} submits, "
                      f"restarted on the same port/dir after {server_up - t_down:.1f} s; same Producer object "
                      "and worker throughout",
            "outcome": f"200/200 succeeded in {elapsed:.1f} s, 0 submit errors, 1 result object per job, "
                       f"{len(again)} job(s) run twice (in flight at the kill; same single result object)"})
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_s3_down_30s_jobs_retry_and_complete(redis_aof, fleet):
    """weed stopped for ~25 s and started again on the same ports and data dir: jobs that hit the
    outage retry with backoff (below the visibility timeout) and complete; no half-written or
    duplicate result objects."""
    weed = Weed().start()
    try:
        weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
        settings = make_settings(redis_aof.url, weed, visibility_timeout=20, storage_retries=8,
                                 storage_backoff_base=1.0)
        producer = Producer(settings)
        w = fleet.worker(settings, producer, concurrency=2, name="s3outage")
        before = [producer.submit("s3://inputs/rel/line.png", job_id=f"s3b-{i}").id for i in range(10)]
        assert all(r["status"] == "succeeded" for r in wait_records(settings, before, timeout=60).values())
        t_down = time.time()
        weed.down()
        during = [producer.submit("s3://inputs/rel/line.png", job_id=f"s3d-{i}").id for i in range(20)]
        time.sleep(max(0.0, 25 - (time.time() - t_down)))
        assert not wait_records(settings, during, timeout=0.1), "jobs finished while S3 was down"
        weed.up()
        outage = time.time() - t_down
        records = wait_records(settings, during, timeout=90)
        recovered = time.time() - t_down - outage
        assert {r["status"] for r in records.values()} == {"succeeded"} and len(records) == 20, \
            (records, w.tail())
        _one_object_each(weed, settings, before + during)
        log = w.tail(10**7)
        retries = [json.loads(line) for line in log.splitlines()
                   if line.startswith("{") and '"job.storage_retry"' in line]
        assert retries, "no storage retry was logged"
        delays = sorted({r["retry_in_s"] for r in retries})
        assert max(delays) <= settings.visibility_timeout / 2
        REPORT["faults"].append({
            "scenario": f"S3 server unavailable for {outage:.0f} s",
            "action": f"weed mini stopped for {outage:.0f} s with 20 jobs submitted during the outage, restarted "
                      "on the same ports and data dir; storage_retries=8, backoff 1 s doubling, capped at VT/2",
            "outcome": f"20/20 succeeded {recovered:.1f} s after S3 came back; {len(retries)} storage retries "
                       f"logged (delays {delays} s); 30 result objects for 30 jobs, all complete JSON"})
    finally:
        weed.stop()


def _cli(settings, *args):
    env = dict(os.environ, **to_env(settings))
    return subprocess.run([sys.executable, "-m", "ocrfleet.fleet_cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_webhook_receiver_down_slow_500_dead_letter_then_cli_replay(weed, redis_aof, fleet, origin):
    """Receiver down (connection refused), slow (over webhook_timeout) and answering 500: bounded
    attempts with growing gaps, then one dead letter each; `ocrfleet webhooks dead-letter list`
    shows them and `replay --all` delivers them once the receivers answer."""
    down_port = free_port()
    settings = make_settings(redis_aof.url, weed, webhook_max_attempts=3, webhook_backoff_base=0.3,
                             webhook_backoff_max=2.0, webhook_timeout=1.0)
    weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
    producer = Producer(settings)
    fleet.worker(settings, producer, concurrency=1, name="hooks")
    t = time.time_ns()
    targets = {"down": f"http://127.0.0.1:{down_port}/hook/{t}", "slow": f"{origin.url}/slow/2/{t}",
               "500": f"{origin.url}/status/500/{t}"}
    jobs = {k: producer.submit("s3://inputs/rel/line.png", webhook_url=url, job_id=f"hook-{k}-{t}")
            for k, url in targets.items()}
    for job in jobs.values():
        assert job.result(timeout=60)["status"] == "succeeded"
    deadline = time.time() + 40
    dead = {}
    while time.time() < deadline and len(dead) < 3:
        dead = {v["delivery"]["job_id"]: (k, v) for k, v in state.dead_letters(settings, "webhooks").items()}
        time.sleep(0.2)
    assert len(dead) == 3, dead
    for kind, job in jobs.items():
        _, rec = dead[job.id]
        assert rec["attempts"] == 3, rec
    errors = {kind: dead[job.id][1]["last_error"] for kind, job in jobs.items()}
    assert "Connection" in errors["down"] or "refused" in errors["down"].lower(), errors
    assert "timed out" in errors["slow"].lower() or "timeout" in errors["slow"].lower(), errors
    assert errors["500"] == "HTTP 500"
    gaps = [b["time"] - a["time"] for a, b in zip(origin.posts(f"/status/500/{t}"), origin.posts(f"/status/500/{t}")[1:])]
    assert len(gaps) == 2 and all(g >= 0.2 for g in gaps), gaps

    listed = _cli(settings, "webhooks", "dead-letter", "list")
    assert listed.returncode == 0, listed.stderr
    listed_ids = {json.loads(line)["delivery_id"] for line in listed.stdout.splitlines()}
    assert listed_ids == set(state.dead_letters(settings, "webhooks"))
    # the receivers come back: a server on the dead port; the other two are re-pointed by replay
    back = Origin(port=down_port)
    try:
        replay = _cli(settings, "webhooks", "dead-letter", "replay", "--all")
        assert replay.returncode == 0, replay.stderr
        hit = back.wait_posts(f"/hook/{t}", 1)[0]
        verify_signature(SECRET, hit["headers"], hit["body"])
        assert hit["headers"]["webhook-id"] == dead[jobs["down"].id][0]
        assert len(origin.wait_posts(f"/slow/2/{t}", 4, timeout=30)) >= 4  # answered 200 after 2 s each time
    finally:
        back.stop()
    REPORT["faults"].append({
        "scenario": "webhook receiver down / slow / answering 500",
        "action": "connection refused, 2 s answers with webhook_timeout=1 s, HTTP 500; "
                  "webhook_max_attempts=3, backoff 0.3 s doubling (jitter)",
        "outcome": f"3 attempts each, gaps {[round(g, 2) for g in gaps]} s (500 case), then dead letters "
                   f"({'; '.join(f'{k}: {v[:60]}' for k, v in errors.items())}); `ocrfleet webhooks dead-letter "
                   "list` showed all 3; `replay --all` re-enqueued them; the revived receiver got the same "
                   "signed webhook-id"})
