"""Issue 10: no job can take the fleet down. Poison messages on the queue list, a broker out of
memory (maxmemory + noeviction on a private redis-server), the hard time limit, a cancel while
queued, a result write refused by S3, job_id reuse after its claim expired, secrets and
signatures, error codes. Real Redis, real SeaweedFS, real worker subprocesses.

Each test appends its probes to REPORT["probes"] (class, probe, the behaviour issue 10
observed on main before this change, the behaviour now); docs/reliability.md lists them."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis

from ocrfleet.config.settings import to_env
from ocrfleet.producer import EnqueueError, Producer, SpecError
from ocrfleet.jobs.signing import InvalidSignature, ReplayGuard, headers as sign_headers, verify_signature
from ocrfleet.tasks import state
from ocrfleet.jobs import contract as keys

from .helpers import DATA, REPO, REPORT, SECRET, line_png, make_settings, read_objects

pytestmark = pytest.mark.timeout(300)
TENANT_SECRET = "tenant-acme-" + uuid.uuid4().hex[:10]
KILLS = {"time_limit": 0}  # children the hard time limit replaced on purpose


def probe(cls: str, name: str, before: str, now: str) -> None:
    REPORT["probes"].append({"cls": cls, "probe": name, "before": before, "now": now})


@pytest.fixture(scope="module")
def hard(weed, redis_aof, origin, session_fleet):
    """One worker (one child) for the module. No soft limit (0): the 8 s hard limit is what
    ends a stuck job here (Celery never fires the hard limit before a soft one)."""
    t0 = time.time()
    port = origin.url.rsplit(":", 1)[1]
    settings = make_settings(redis_aof.url, weed, allowed_http_hosts=[f"127.0.0.1:{port}"],
                             task_time_limit=8, task_soft_time_limit=0, visibility_timeout=60,
                             webhook_tenant_secrets=[f"acme={TENANT_SECRET}"], max_job_pixels=60_000_000)
    weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
    producer = Producer(settings)
    w = session_fleet.worker(settings, producer, concurrency=1, name="hard")
    w.first_children = w.children()
    yield settings, producer, w
    replaced = len(set(w.first_children) - set(w.children()))
    fig = REPORT["figures"]
    fig["time_limit_child_replacements"] = KILLS["time_limit"]
    fig["worker_restarts"] = fig.get("worker_restarts_bad_inputs", 0) + max(0, replaced - KILLS["time_limit"])
    fig.setdefault("jobs_lost", 0)
    fig["hardening_s"] = round(time.time() - t0, 1)  # this module, from its worker's start
    w.stop()


def _template(producer, settings, r) -> dict:
    """A real Celery message envelope, taken off a list no worker reads."""
    scratch = settings.queue(f"scratch{uuid.uuid4().hex[:6]}")
    tid = f"tmpl-{uuid.uuid4().hex[:8]}"
    producer.app.send_task("ocrfleet.recognize", args=[{"job_id": tid}], task_id=tid, queue=scratch, priority=0)
    raw = r.rpop(scratch)
    assert raw, "no template message"
    return json.loads(raw)


def _envelope(template: dict, task_id: str, body: bytes | str, b64: bool = True) -> bytes:
    msg = json.loads(json.dumps(template))
    msg["headers"]["id"] = msg["headers"]["root_id"] = task_id
    msg["properties"]["correlation_id"] = task_id
    msg["properties"]["delivery_tag"] = uuid.uuid4().hex
    queue = msg["properties"]["delivery_info"]["routing_key"].split("scratch")[0] + "cpu"
    msg["properties"]["delivery_info"] = {"exchange": queue, "routing_key": queue}
    msg["body"] = base64.b64encode(body).decode() if b64 else body
    return json.dumps(msg).encode()


def _celery_body(spec_json: str) -> bytes:
    return f'[[{spec_json}],{{}},{{"callbacks":null,"errbacks":null,"chain":null,"chord":null}}]'.encode()


def test_poison_messages_are_dead_lettered_and_the_worker_keeps_serving(hard, origin, weed):
    settings, producer, w = hard
    parent, children = w.proc.pid, w.children()
    r = redis.Redis.from_url(settings.broker_url)
    template = _template(producer, settings, r)
    hook = f"/ok/poison-{uuid.uuid4().hex[:8]}"
    ids = {k: f"poison-{k}-{uuid.uuid4().hex[:6]}" for k in ("deep", "b64", "obj", "ctype")}
    deep = '{"a":' * 900 + "1" + "}" * 900
    deep_spec = (f'{{"spec_version":1,"job_id":"{ids["deep"]}","model_name":"{settings.default_model}",'
                 f'"inputs":[{{"ref":"s3://inputs/rel/line.png"}}],"webhook_url":"{origin.url}{hook}",'
                 f'"metadata":{deep}}}')
    bad_ctype = json.loads(_envelope(template, ids["ctype"], _celery_body('{"job_id":"x"}')))
    bad_ctype["content-type"] = "application/x-python-serialize"
    raws = {
        "not JSON": b"\x00\xffnot json at all",
        "a JSON list": b"[1, 2, 3]",
        "JSON nested 100,000 levels": b"[" * 100_000 + b"]" * 100_000,
        "Celery message whose body is not base64": _envelope(template, ids["b64"], "!!not base64!!", b64=False),
        "valid envelope, spec nested 900 levels": _envelope(template, ids["deep"], _celery_body(deep_spec)),
        "valid envelope, body a JSON object (not [args, kwargs, embed])": _envelope(template, ids["obj"], b'{"x":1}'),
        "valid envelope, pickle content type": json.dumps(bad_ctype).encode(),
        "task id with '/' (would become an S3 key)": _envelope(template, "../../other/x", _celery_body("{}")),
        "task id with a trailing newline": _envelope(template, "abc\n", _celery_body("{}")),
    }
    queue = settings.queue("cpu")
    for raw in raws.values():
        r.lpush(queue, raw)
    good = producer.submit("s3://inputs/rel/line.png")
    assert good.result(timeout=90)["status"] == "succeeded"
    records = {k: producer.job(v).result(timeout=60) for k, v in ids.items()}
    for k, rec in records.items():
        assert rec["status"] == "failed" and rec["error"]["code"] == "INVALID_INPUT", (k, rec)
    objects = read_objects(weed.client(), settings, [keys.result_key(settings, v) for v in ids.values()])
    assert {o["error"]["code"] for o in objects.values()} == {"INVALID_INPUT"}
    post = origin.wait_posts(hook, 1)[0]  # the deep job's webhook, read from its top level
    assert json.loads(post["body"])["status"] == "failed"
    dead = state.dead_messages(settings, 100)
    assert len(dead) == len(raws), [d["reason"] for d in dead]
    assert all(d["reason"] and d["list"] == queue for d in dead)
    assert r.llen(queue) == 0  # nothing left behind, nothing redelivered
    assert w.proc.poll() is None and w.proc.pid == parent and w.children() == children, w.tail()
    assert "poison message dead-lettered" in w.tail(10**7)
    env = dict(os.environ, **to_env(settings), PYTHONPATH=str(REPO))
    listed = subprocess.run([sys.executable, "-m", "ocrfleet.fleet_cli", "messages", "dead-letter", "list"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(raws), listed
    before = {"not JSON": "worker exited, message lost", "a JSON list": "worker exited, message lost",
              "Celery message whose body is not base64": "worker exited, message lost",
              "valid envelope, spec nested 900 levels": "main process died (RecursionError), redelivered forever"}
    for name in raws:
        probe("1 poison", name, before.get(name, "not probed before"), "dead-lettered with reason; worker kept serving"
              + ("; job failed INVALID_INPUT (result object, record, webhook)" if "envelope" in name or "base64" in name
                 else ""))


def test_spec_limits_ids_and_refs_at_the_producer(hard, tmp_path):
    settings, producer, _ = hard
    deep: dict = {}
    for _ in range(900):
        deep = {"a": deep}
    with pytest.raises(SpecError, match="nested deeper"):
        producer.submit("s3://inputs/rel/line.png", metadata=deep)
    for bad_id in ("abc\n", "a/b", "x" * 129):
        with pytest.raises(SpecError):
            producer.submit("s3://inputs/rel/line.png", job_id=bad_id)
    with pytest.raises(SpecError, match="NUL"):
        producer.submit(f"file://{DATA}/a%00.png")
    port = settings.allowed_http_hosts[0].rsplit(":", 1)[1]
    with pytest.raises(SpecError, match="allow-listed"):
        producer.submit("http://127.0.0.1:6379/x.png")  # the allowed host, another port
    producer.build_spec(f"http://127.0.0.1:{port}/files/x.png")  # the allowed host:port
    # `ocrfleet submit` prints a deep spec's error cleanly (exit 2, no traceback)
    deep_json = '{"a":' * 5000 + "1" + "}" * 5000
    env = dict(os.environ, **to_env(settings), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "ocrfleet.fleet_cli", "submit", "s3://inputs/rel/line.png",
                          "--metadata", deep_json], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr, out.stderr
    probe("1 poison", "spec with metadata nested 900 levels at Producer.submit",
          "accepted (then killed every worker)", "SpecError")
    probe("5 identity", "job_id 'abc\\n' (trailing newline)", "accepted", "SpecError (full match)")
    probe("7 error codes", "deep spec at the producer / `ocrfleet submit`", "bare RecursionError / traceback",
          "SpecError; CLI prints 'error: ...', exit 2")
    probe("7 error codes", "http URL on the allowed host but another port", "fetched (reached a Redis port)",
          "SpecError at submit; INVALID_INPUT at the worker")


def test_broker_out_of_memory(weed, redis_aof, origin, fleet):
    """maxmemory + noeviction: submits fail with EnqueueError and release the claim; the
    worker holds the message it just took until Redis takes writes again; nothing is lost."""
    from .servers import Redis

    server = Redis(aof=False).start()
    try:
        settings = make_settings(server.url, weed, allowed_http_hosts=[origin.url.split("//", 1)[1]])
        weed.client().put_object(Bucket="inputs", Key="rel/line.png", Body=line_png())
        producer = Producer(settings)
        w = fleet.worker(settings, producer, concurrency=1, name="oom")
        parent, children = w.proc.pid, w.children()
        c = server.client()
        slow = producer.submit(f"{origin.url}/slow/3/x.png")  # keeps the child busy over the switch
        queued = [producer.submit("s3://inputs/rel/line.png") for _ in range(4)]
        time.sleep(0.5)
        c.config_set("maxmemory-policy", "noeviction")
        c.config_set("maxmemory", 1)  # every write refused: "OOM command not allowed"
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            c.set("probe", "1")
        refused_id = f"oom-{uuid.uuid4().hex[:8]}"
        with pytest.raises(EnqueueError):
            producer.submit("s3://inputs/rel/line.png", job_id=refused_id)
        assert not c.exists(keys.job_key(settings, refused_id))
        # the claim landed (claims on another Redis) but the enqueue failed: the claim is rolled back
        other = Producer(settings.replace(redis_url=f"{redis_aof.url}/0"))
        with pytest.raises(EnqueueError, match="claim was released"):
            other.submit("s3://inputs/rel/line.png", job_id=refused_id)
        assert not redis_aof.client().exists(keys.job_key(settings, refused_id))
        time.sleep(6)  # the slow job ends and the worker takes the next message while Redis refuses writes
        assert w.proc.poll() is None, w.tail()
        c.config_set("maxmemory", 0)
        again = producer.submit("s3://inputs/rel/line.png", job_id=refused_id)  # the id was not blocked
        assert again.created
        records = {j.id: j.result(timeout=90) for j in queued + [again]}
        assert all(rec["status"] == "succeeded" for rec in records.values()), records
        assert slow.result(timeout=30)["error"]["code"] == "NOT_FOUND"
        assert w.proc.pid == parent and w.children() == children, w.tail()
        probe("2 broker OOM", "Redis maxmemory + noeviction while jobs are queued and one runs",
              "workers exited; the message just taken was lost (job queued forever, id blocked 24 h)",
              "workers held the message and resumed; 6/6 jobs finished, 0 lost, 0 restarts")
        probe("2 broker OOM", "submit while Redis refuses writes", "enqueue error left the claim (id blocked 24 h)",
              "EnqueueError; claim released (checked with claims on the broker and on another Redis)")
        REPORT["figures"]["jobs_lost"] = REPORT["figures"].get("jobs_lost", 0) + sum(
            1 for rec in records.values() if rec["status"] not in ("succeeded", "failed", "cancelled"))
    finally:
        server.stop()


def test_time_limit_and_cancel_while_queued_end_with_a_record_and_one_webhook(hard, origin, weed):
    settings, producer, w = hard
    hook_t, hook_c = f"/ok/tl-{uuid.uuid4().hex[:8]}", f"/ok/cancel-{uuid.uuid4().hex[:8]}"
    stuck = producer.submit(f"{origin.url}/slow/30/x.png", webhook_url=origin.url + hook_t)
    deadline = time.time() + 20
    while stuck.status() != "running" and time.time() < deadline:
        time.sleep(0.1)
    queued = producer.submit("s3://inputs/rel/line.png", webhook_url=origin.url + hook_c)
    queued.cancel()  # queued behind the stuck job (one child, no prefetch)
    rec = stuck.result(timeout=60)
    assert rec["status"] == "failed" and rec["error"]["code"] == "TIME_LIMIT", rec
    KILLS["time_limit"] += 1
    post = origin.wait_posts(hook_t, 1, timeout=60)[0]
    assert json.loads(post["body"])["error"]["code"] == "TIME_LIMIT"
    verify_signature(SECRET, post["headers"], post["body"])
    crec = queued.result(timeout=60)
    assert crec["status"] == "cancelled" and crec["error"]["code"] == "CANCELLED", crec
    assert queued.status() == "cancelled"
    cpost = origin.wait_posts(hook_c, 1, timeout=60)[0]
    assert json.loads(cpost["body"])["status"] == "cancelled"
    objects = read_objects(weed.client(), settings, [keys.result_key(settings, j.id) for j in (stuck, queued)])
    assert sorted(o["error"]["code"] for o in objects.values()) == ["CANCELLED", "TIME_LIMIT"]
    time.sleep(1.0)
    assert len(origin.posts(hook_t)) == 1 and len(origin.posts(hook_c)) == 1
    probe("4 terminal states", "job killed by the hard time limit", "no result object, no webhook",
          "failed TIME_LIMIT: result object, record, one webhook")
    probe("4 terminal states", "cancel a queued job", "no webhook; result() failed/INTERNAL TaskRevokedError",
          "cancelled CANCELLED in status(), result(), result object, one webhook")


def test_result_write_refused_by_s3_fails_with_storage_unavailable(weed, redis_aof, origin, fleet):
    settings = make_settings(redis_aof.url, weed, s3_secret_key="wrong-" + uuid.uuid4().hex[:6], storage_retries=1,
                             storage_backoff_base=0.2)
    producer = Producer(settings)
    w = fleet.worker(settings, producer, concurrency=1, name="s3denied")
    hook = f"/ok/s3denied-{uuid.uuid4().hex[:8]}"
    line = sorted((DATA / "rec").glob("*/imgs/*"))[0]
    job = producer.submit(f"file://{line}", webhook_url=origin.url + hook)
    rec = job.result(timeout=90)
    assert rec["status"] == "failed" and rec["error"]["code"] == "STORAGE_UNAVAILABLE", rec
    assert rec["result_uri"] is None
    post = origin.wait_posts(hook, 1, timeout=30)[0]
    assert json.loads(post["body"])["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert w.proc.poll() is None
    probe("4 terminal states", "S3 credential error on the result write", "task crashed ('object not found'), "
          "no retry, no webhook", "retried, then failed STORAGE_UNAVAILABLE: record + one webhook")


def test_job_id_reused_after_claim_expiry_never_returns_the_stale_result(hard):
    settings, producer, _ = hard
    job_id = f"reuse-{uuid.uuid4().hex[:8]}"
    first = producer.submit("s3://inputs/rel/line.png", job_id=job_id)
    assert first.result(timeout=60)["status"] == "succeeded"
    r = redis.Redis.from_url(settings.redis)
    r.delete(keys.job_key(settings, job_id))  # both expire after result_expires (24 h)
    redis.Redis.from_url(settings.result_backend).delete(f"celery-task-meta-{job_id}")
    second = producer.submit("s3://inputs/rel/line.png", job_id=job_id, regions=[[0, 0, 100, 32]])
    assert second.created
    rec = second.result(timeout=60)
    assert rec["status"] == "failed" and rec["error"]["code"] == "CONFLICT", rec
    assert first.fetch_result()["summary"]["lines"] == 1  # the first job's result is untouched
    probe("5 identity", "job_id reused after its claim expired", "returned the old job's result",
          "failed CONFLICT (results carry a spec digest)")


def test_secrets_redacted_and_per_tenant_signatures(hard, origin, weed):
    settings, producer, w = hard
    port = origin.url.rsplit(":", 1)[1]
    marks = ["hunter2", "sekritsig", "AKIDSECRET", "hookpass", "hooktoken"]
    ref = (f"http://user:hunter2@127.0.0.1:{port}/files/nothing.png"
           "?X-Amz-Signature=sekritsig&X-Amz-Credential=AKIDSECRET")
    hook = f"/status/400/{uuid.uuid4().hex[:8]}"
    job = producer.submit(ref, webhook_url=f"http://hookuser:hookpass@127.0.0.1:{port}{hook}?token=hooktoken")
    rec = job.result(timeout=60)
    assert rec["error"]["code"] == "NOT_FOUND", rec
    deadline = time.time() + 20
    while not state.dead_letters(settings, "webhooks") and time.time() < deadline:
        time.sleep(0.2)  # the receiver answers 400: a permanent failure, dead-lettered at once
    stored = {
        "backend record": redis.Redis.from_url(settings.result_backend).get(f"celery-task-meta-{job.id}").decode(),
        "result object": json.dumps(job.fetch_result()),
        "dead letters": json.dumps(state.dead_letters(settings, "webhooks")),
        "worker log (structlog + Celery's own lines)": w.tail(10**7),
    }
    leaks = {where: [m for m in marks if m in text] for where, text in stored.items()}
    assert not any(leaks.values()), leaks
    assert "***" in stored["result object"] and "***" in stored["dead letters"]
    # per-tenant webhook secret
    thook = f"/ok/tenant-{uuid.uuid4().hex[:8]}"
    tjob = producer.submit("s3://inputs/rel/line.png", webhook_url=origin.url + thook, tenant="acme")
    assert tjob.result(timeout=60)["status"] == "succeeded"
    post = origin.wait_posts(thook, 1)[0]
    verify_signature(TENANT_SECRET, post["headers"], post["body"])
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, post["headers"], post["body"])
    probe("6 secrets", "user:pass@ and X-Amz-Signature/Credential in an input URL and a webhook URL",
          "in Celery's log lines, result objects, backend records, dead letters",
          "*** in all four (checked)")
    probe("6 secrets", "per-tenant webhook secret", "not available", "spec 'tenant' picks webhook_tenant_secrets")


def test_worker_secrets_and_signature_verification(tmp_path, origin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRFLEET_")}
    env["PYTHONPATH"] = str(REPO)

    def dry(**extra):
        return subprocess.run([sys.executable, "-m", "ocrfleet.fleet_cli", "worker", "--dry-run"],
                              capture_output=True, text=True, env={**env, **extra}, timeout=60, cwd=tmp_path)

    out = dry()
    assert out.returncode == 2 and "no webhook secret" in out.stderr, out
    assert dry(OCRFLEET_ALLOW_UNSIGNED_WEBHOOKS="1").returncode == 0
    bad = dry(OCRFLEET_WEBHOOK_SECRET="whsec_not*base64!")
    assert bad.returncode == 2 and "whsec_" in bad.stderr, bad
    assert dry(OCRFLEET_WEBHOOK_SECRET="whsec_" + base64.b64encode(b"k" * 24).decode()).returncode == 0
    # a delivery that cannot be signed (a worker started before the check) is a permanent
    # failure: dead-lettered with the reason by deliver_webhook, never an unhandled crash
    from ocrfleet.config.settings import load_settings
    from ocrfleet.tasks import webhooks

    s = load_settings(env={}, webhook_secret="whsec_not*base64!", webhook_allow_private=["127.0.0.1"])
    with pytest.raises(webhooks.PermanentFailure, match="cannot sign"):
        webhooks.post(s, {"url": origin.url + "/ok/unsigned", "delivery_id": "msg_x", "job_id": "j", "payload": {}})
    # verification: empty secret, strict timestamps, replay guard
    body = b'{"job_id":"j"}'
    h = sign_headers("s3cret", "msg_1", body, now=1_700_000_000)
    verify_signature("s3cret", h, body, now=1_700_000_000)
    for secret in ("", b""):
        with pytest.raises(InvalidSignature):
            verify_signature(secret, h, body, now=1_700_000_000)
    for ts in ("+1700000000", " 1700000000", "01700000000", "1700000000\n", "\u0661" * 10, "1_700_000_000"):
        with pytest.raises(InvalidSignature):
            verify_signature("s3cret", {**h, "webhook-timestamp": ts}, body, now=1_700_000_000)
    guard = ReplayGuard(ttl=600)
    guard.check("msg_1", now=1_700_000_000)
    with pytest.raises(InvalidSignature, match="replay"):
        guard.check("msg_1", now=1_700_000_100)
    guard.check("msg_1", now=1_700_000_700)  # remembered for ttl seconds only
    probe("6 secrets", "worker without a webhook secret", "started silently (unsigned webhooks)",
          "refused (exit 2) unless OCRFLEET_ALLOW_UNSIGNED_WEBHOOKS=1")
    probe("4 terminal states", "malformed whsec_ secret", "webhook task crashed, delivery lost",
          "worker refuses to start with a clear error; a delivery that cannot be signed is dead-lettered")
    probe("6 secrets", "verify_signature('', ...)", "accepted forgeries", "InvalidSignature")
    probe("6 secrets", "timestamps '+ts', ' ts', '0ts', non-ASCII digits", "accepted",
          "InvalidSignature (ASCII digits only)")
    probe("6 secrets", "replay of a delivery id", "no helper", "ReplayGuard (in memory or Redis, TTL)")
