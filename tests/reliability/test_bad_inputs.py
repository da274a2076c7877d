"""Bad input, table-driven, through ONE long-lived worker: every case ends with a clear error
code and message in the result (or works, for awkward-but-valid images), the worker process
survives every case (same PIDs, each job delivered once), and a good job afterwards succeeds.

Cases the producer refuses (SpecError, nothing enqueued) are ALSO sent raw to the worker, as a
buggy or hostile producer would, to check the worker's own refusal."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from ocrfleet.producer import Producer, SpecError
from ocrfleet.tasks import state
from ocrfleet.tasks.webhooks import delivery_id

from . import corpus
from .helpers import DATA, MODEL, REPORT, make_settings, vm_hwm_kib, wait_records

pytestmark = pytest.mark.timeout(240)

OK = "succeeded"
HOOK_BLOCKED = "webhook refused (dead letter)"


def _deep(levels: int) -> dict:
    deep: dict = {}
    for _ in range(levels):
        deep = {"a": deep}
    return deep


def cases(origin: str, root: str, redis_port: int = 6379) -> list[dict]:
    """(id, submit kwargs, expected outcome). ``s3:NAME`` is s3://inputs/bad/NAME."""
    good = "s3:good.png"
    port = origin.rsplit(":", 1)[1]
    c = [
        ("corrupt PNG", dict(inputs="s3:corrupt.png"), "INVALID_INPUT"),
        ("truncated PNG", dict(inputs="s3:truncated.png"), "INVALID_INPUT"),
        ("zero-byte PNG", dict(inputs="s3:zero.png"), "INVALID_INPUT"),
        ("corrupt JPEG", dict(inputs="s3:corrupt.jpg"), "INVALID_INPUT"),
        ("truncated JPEG", dict(inputs="s3:truncated.jpg"), "INVALID_INPUT"),
        ("zero-byte JPEG", dict(inputs="s3:zero.jpg"), "INVALID_INPUT"),
        ("text file named .png", dict(inputs="s3:text.png"), "INVALID_INPUT"),
        ("HTML named .jpg", dict(inputs="s3:html.jpg"), "INVALID_INPUT"),
        ("1x1 image", dict(inputs="s3:1x1.png"), OK),
        ("1 high x 100000 wide image", dict(inputs="s3:1x100000.png"), "INVALID_INPUT"),
        ("100000 high x 1 wide image", dict(inputs="s3:100000x1.png"), "INVALID_INPUT"),
        ("PNG header claiming 50000x50000 (bomb)", dict(inputs="s3:bomb.png"), "TOO_LARGE"),
        ("JPEG header claiming 50000x50000 (bomb)", dict(inputs="s3:bomb.jpg"), "TOO_LARGE"),
        ("CMYK JPEG", dict(inputs="s3:cmyk.jpg"), OK),
        ("16-bit PNG", dict(inputs="s3:16bit.png"), OK),
        ("RGBA PNG, transparent background", dict(inputs="s3:rgba.png"), OK),
        ("grayscale PNG", dict(inputs="s3:gray.png"), OK),
        ("palette PNG", dict(inputs="s3:palette.png"), OK),
        ("TIFF", dict(inputs="s3:tiff.tif"), OK),
        ("encrypted PDF", dict(inputs="s3:encrypted.pdf"), "INVALID_INPUT"),
        ("malformed PDF", dict(inputs="s3:malformed.pdf"), "INVALID_INPUT"),
        ("truncated PDF", dict(inputs="s3:truncated.pdf"), "INVALID_INPUT"),
        ("10,000-page PDF, all pages", dict(inputs="s3:pages10000.pdf"), "TOO_LARGE"),
        ("10,000-page PDF, page 9999 only", dict(inputs="s3:pages10000.pdf", pages=[9999]), OK),
        ("PDF page range outside the document", dict(inputs="s3:render.pdf", pages=[0, 5]), "INVALID_INPUT"),
        ("object over max_input_bytes (3 MiB > 2 MiB)", dict(inputs="s3:big.bin"), "TOO_LARGE"),
        ("missing S3 key", dict(inputs="s3://inputs/bad/no-such-key.png"), "NOT_FOUND"),
        ("missing S3 bucket", dict(inputs="s3://no-such-bucket-rel/x.png"), "NOT_FOUND"),
        ("box region outside the image", dict(inputs=good, regions=[[500, 500, 600, 600]]), "INVALID_INPUT"),
        ("box region partly outside (clipped)", dict(inputs=good, regions=[[100, 0, 900, 32]]), OK),
        ("zero-width box", dict(inputs=good, regions=[[10, 0, 10, 30]]), "INVALID_INPUT"),
        ("degenerate quad (one point x4)", dict(inputs=good, regions=[[[9, 9]] * 4]), "INVALID_INPUT"),
        ("degenerate quad (collinear)", dict(inputs=good, regions=[[[0, 5], [50, 5], [100, 5], [150, 5]]]),
         "INVALID_INPUT"),
        ("NaN region coordinates", dict(inputs=good, regions=[[float("nan"), 0, 10, 10]]), "INVALID_INPUT"),
        ("Infinity region coordinates", dict(inputs=good, regions=[[0, 0, float("inf"), 10]]), "INVALID_INPUT"),
        ("file:// with .. escaping the root", dict(inputs=f"file://{DATA}/../../../../etc/passwd"), "INVALID_INPUT"),
        ("file:// with %2e%2e escaping the root", dict(inputs=f"file://{DATA}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
         "INVALID_INPUT"),
        ("file:// outside the roots", dict(inputs="file:///etc/passwd"), "INVALID_INPUT"),
        ("file:// symlink inside the root to /etc/passwd", dict(inputs=f"file://{root}/passwd-link.png"),
         "INVALID_INPUT"),
        ("file:// missing file under the root", dict(inputs=f"file://{root}/nothing.png"), "NOT_FOUND"),
        ("file:// a directory", dict(inputs=f"file://{root}/subdir"), "INVALID_INPUT"),
        ("URL to 169.254.169.254 (metadata)", dict(inputs="http://169.254.169.254/latest/meta-data/"),
         "INVALID_INPUT"),
        ("URL to 10.0.0.1", dict(inputs="http://10.0.0.1/a.png"), "INVALID_INPUT"),
        ("URL to localhost (resolves to 127.0.0.1)", dict(inputs=f"http://localhost:{port}/files/good.png"),
         "INVALID_INPUT"),
        ("URL on an allowed host redirecting to localhost",
         dict(inputs=f"{origin}/redirect?to=http://localhost:{port}/files/good.png"), "INVALID_INPUT"),
        ("URL on an allowed host redirecting to 169.254.169.254",
         dict(inputs=f"{origin}/redirect?to=http://169.254.169.254/latest/meta-data/"), "INVALID_INPUT"),
        ("URL on an allowed host (control)", dict(inputs=f"{origin}/files/good.png"), OK),
        ("webhook to 169.254.169.254", dict(inputs=good, webhook_url="http://169.254.169.254/hook"), HOOK_BLOCKED),
        ("webhook to 10.1.2.3", dict(inputs=good, webhook_url="http://10.1.2.3/hook"), HOOK_BLOCKED),
        ("webhook to 127.0.0.1", dict(inputs=good, webhook_url=f"{origin}/hook"), HOOK_BLOCKED),
        ("webhook to [::1]", dict(inputs=good, webhook_url=f"http://[::1]:{port}/hook"), HOOK_BLOCKED),
        ("webhook to localhost (name resolving to 127.0.0.1)",
         dict(inputs=good, webhook_url=f"http://localhost:{port}/hook"), HOOK_BLOCKED),
        ("unknown model name", dict(inputs=good, model_name="PP-OCRv9_imaginary_rec"), "MODEL_UNAVAILABLE"),
        ("model name with path characters", dict(inputs=good, model_name="../../etc/passwd"), "INVALID_INPUT"),
        ("oversized job spec (300 KB metadata)", dict(inputs=good, metadata={"blob": "x" * 300_000}),
         "INVALID_INPUT"),
        ("too many inputs (1,001)", dict(inputs=[good] * 1001), "INVALID_INPUT"),
        ("spec_version 2", dict(inputs=good, raw_override={"spec_version": 2}), "INVALID_INPUT"),
        ("message is not a JSON object", dict(inputs=good, raw_message="just a string"), "INVALID_INPUT"),
        # issue 10: poison specs, per-job pixel budget, error codes
        ("metadata nested 200 levels (spec depth limit)", dict(inputs=good, metadata=_deep(200)), "INVALID_INPUT"),
        ("job_id with a trailing newline", dict(inputs=good, raw_override={"job_id": "abc\n"}), "INVALID_INPUT"),
        ("same 25 MP image referenced 10x (pixel budget)", dict(inputs=["s3:25mp.png"] * 10), "TOO_LARGE"),
        ("PDF page of 10,000 pt (400 MP, measured before rendering)", dict(inputs="s3:page10000pt.pdf"),
         "TOO_LARGE"),
        ("PDF page of 20,000 pt", dict(inputs="s3:page20000pt.pdf"), "TOO_LARGE"),
        ("quad far outside the image (clipped to it)",
         dict(inputs=good, regions=[[[-1e6, -1e6], [1e6, -1e6], [1e6, 1e6], [-1e6, 1e6]]]), OK),
        ("100 quads far outside the image (clipped, within budget)",
         dict(inputs=good, regions=[[[-1e5, -1e5], [1e5, -1e5], [1e5, 1e5], [-1e5, 1e5]]] * 100), OK),
        ("quad entirely outside the image", dict(inputs=good, regions=[[[5000, 5000], [6000, 5000],
                                                                       [6000, 5100], [5000, 5100]]]),
         "INVALID_INPUT"),
        ("file:// with %00", dict(inputs=f"file://{root}/a%00.png"), "INVALID_INPUT"),
        ("URL on an allowed host redirecting to file://",
         dict(inputs=f"{origin}/redirect?to=file:///etc/passwd"), "INVALID_INPUT"),
        ("URL on the allowed host, another port (Redis)", dict(inputs=f"http://127.0.0.1:{redis_port}/x.png"),
         "INVALID_INPUT"),
        ("FIFO under an allowed file root", dict(inputs=f"file://{root}/fifo.png"), "INVALID_INPUT"),
        ("symlink to /dev/zero under an allowed file root", dict(inputs=f"file://{root}/null.png"), "INVALID_INPUT"),
    ]
    return [{"case": name, "kw": kw, "expect": expect} for name, kw, expect in c]


def _ref(r: str) -> str:
    return f"s3://inputs/bad/{r[3:]}" if r.startswith("s3:") and not r.startswith("s3://") else r


def _raw_spec(kw: dict, job_id: str) -> dict:
    inputs = kw["inputs"] if isinstance(kw["inputs"], list) else [kw["inputs"]]
    items = []
    for r in inputs:
        item = {"ref": _ref(r)}
        if "pages" in kw:
            item["pages"] = kw["pages"]
        if "regions" in kw:
            item["regions"] = kw["regions"]
        items.append(item)
    spec = {"spec_version": 1, "job_id": job_id, "model_name": kw.get("model_name", MODEL), "batch_size": 8,
            "device": "cpu", "priority": 3, "inputs": items, "submitted_at": time.time()}
    for k in ("webhook_url", "metadata"):
        if k in kw:
            spec[k] = kw[k]
    spec.update(kw.get("raw_override", {}))
    return spec


@pytest.fixture(scope="module")
def bad_env(weed, redis_aof, origin, session_fleet, tmp_path_factory):
    root = tmp_path_factory.mktemp("files-root")
    os.symlink("/etc/passwd", root / "passwd-link.png")
    os.mkfifo(root / "fifo.png")  # nobody ever writes: a blocking open/read would hold the worker
    os.symlink("/dev/zero", root / "null.png")  # resolves outside the root: refused either way
    (root / "subdir").mkdir()
    files = corpus.files()
    c = weed.client()
    for name, data in files.items():
        c.put_object(Bucket="inputs", Key=f"bad/{name}", Body=data)
    origin.files["good.png"] = files["good.png"]
    settings = make_settings(redis_aof.url, weed, webhook_allow_private=[], allowed_file_roots=[str(DATA), str(root)],
                             webhook_max_attempts=2, allowed_http_hosts=[origin.url.split("//", 1)[1]],
                             max_job_pixels=60_000_000)
    producer = Producer(settings)
    worker = session_fleet.worker(settings, producer, concurrency=1, name="badinput")
    return settings, producer, worker, str(root)


def test_bad_inputs_one_worker(bad_env, origin, redis_aof):
    settings, producer, worker, root = bad_env
    parent, children = worker.proc.pid, worker.children()
    hwm_before = max(vm_hwm_kib(pid) for pid in children)
    table = cases(origin.url, root, redis_aof.port)
    assert len(table) >= 30
    for row in table:
        kw = dict(row["kw"])
        row["job_id"] = job_id = f"bad-{uuid.uuid4().hex[:10]}"
        if "raw_override" in kw or "raw_message" in kw:
            row["stage"] = "worker (sent raw)"
        else:
            submit = {k: v for k, v in kw.items() if k != "inputs"}
            inputs = kw["inputs"]
            inputs = [_ref(r) for r in inputs] if isinstance(inputs, list) else _ref(inputs)
            try:
                producer.submit(inputs, job_id=job_id, **submit)
                row["stage"] = "worker"
                continue
            except SpecError as exc:
                row["stage"] = "producer (SpecError) + worker (sent raw)"
                row["producer_error"] = str(exc)
        body = kw.get("raw_message", _raw_spec(kw, job_id))
        producer.app.send_task("ocrfleet.recognize", args=[body], task_id=job_id, queue=settings.queue("cpu"))
    # a good job queued after all the bad ones
    good = producer.submit("s3://inputs/bad/good.png", job_id=f"bad-good-{uuid.uuid4().hex[:6]}")
    records = wait_records(settings, [r["job_id"] for r in table] + [good.id], timeout=180)
    dead = state.dead_letters(settings, "webhooks")
    problems = []
    for row in table:
        rec = records.get(row["job_id"])
        if rec is None:
            problems.append(f"{row['case']}: no result")
            continue
        err = rec.get("error") or {}
        if row["expect"] == HOOK_BLOCKED:
            d = dead.get(delivery_id(row["job_id"], "succeeded"))
            if d is None:  # delivery may still be in flight
                deadline = time.time() + 20
                while d is None and time.time() < deadline:
                    time.sleep(0.2)
                    d = state.dead_letters(settings, "webhooks").get(delivery_id(row["job_id"], "succeeded"))
            outcome = HOOK_BLOCKED if rec["status"] == OK and d and "non-public" in d["last_error"] else \
                f"{rec['status']} / webhook {d}"
            message = d["last_error"] if d else ""
            if d and d["attempts"] != 1:
                problems.append(f"{row['case']}: a refused target was retried ({d['attempts']} attempts)")
        else:
            outcome = rec["status"] if rec["status"] == OK else err.get("code")
            message = err.get("message") or ""
            if rec["status"] == OK and not (rec.get("summary") or {}).get("lines"):
                problems.append(f"{row['case']}: succeeded without lines")
            if rec["status"] != OK and not message:
                problems.append(f"{row['case']}: failed without a message")
        if row.get("producer_error"):
            message = f"producer: {row['producer_error'].splitlines()[-1].strip()}; worker: {message}"
        row.update(outcome=outcome, message=message)
        if outcome != row["expect"]:
            problems.append(f"{row['case']}: expected {row['expect']}, got {outcome}: {message[:300]}")
    assert records.get(good.id, {}).get("status") == OK, records.get(good.id)
    # the same worker processes served every case: no child died (a death would also redeliver)
    assert worker.proc.poll() is None and worker.proc.pid == parent
    assert worker.children() == children, (children, worker.children(), worker.tail())
    counts = {}
    import redis

    r = redis.Redis.from_url(settings.redis)
    for row in table:
        counts[row["case"]] = int(r.get(settings.key("deliveries", row["job_id"])) or 0)
    # each job ran once; a spec the worker's message screen refused (nested too deep) never
    # reaches the job code at all (0 deliveries counted), it is failed from its replacement message
    screened = {"metadata nested 200 levels (spec depth limit)"}
    assert {v for k, v in counts.items() if k not in screened} == {1}, counts
    assert {counts[k] for k in screened} == {0}, counts
    hwm = {pid: vm_hwm_kib(pid) for pid in worker.children()}
    REPORT["bad_inputs"] = [{k: row[k] for k in ("case", "stage", "outcome", "message")} for row in table]
    REPORT["figures"]["peak_child_rss_kib"] = max(hwm.values())
    REPORT["figures"]["child_rss_after_model_load_kib"] = hwm_before
    REPORT["figures"]["max_job_pixels_in_suite"] = settings.max_job_pixels
    REPORT["figures"]["worker_restarts_bad_inputs"] = len(set(children) ^ set(worker.children()))
    # the bound: the model process plus the job budget at 3 bytes a pixel, twice (a decode and
    # its copy), never the gigabytes the hostile inputs would take unchecked
    assert max(hwm.values()) < hwm_before + 2 * 3 * settings.max_job_pixels // 1024, (hwm_before, hwm)
    assert not problems, "\n".join(problems)
