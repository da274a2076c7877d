"""README "A local fleet without Docker", run as written: `ocrfleet dev-fleet` (real weed mini S3,
a real worker subprocess) against a private redis-server, then the README's submit; plus the
CLI's exit statuses and `ocrfleet result` against that live fleet."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrfleet.testing.servers import REPO, RedisServer

LINE = REPO / "tests/data/real/rec/wildreceipt_lines/imgs/1_002.png"


def readme_block() -> tuple[str, str]:
    """The fenced block under the README heading, split into shell 1 and shell 2."""
    text = (REPO / "README.md").read_text()
    section = text.split("### A local fleet without Docker", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    shell1, shell2 = re.split(r"^# shell 2.*$", block, maxsplit=1, flags=re.M)
    return shell1.strip(), shell2.strip()


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def env(redis_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("dev-fleet-home")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, REDIS_URL=redis_server.url, OCRFLEET_HOME=str(home), PYTHONPATH=str(REPO),
                PATH=path, PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def fleet(env, tmp_path_factory):
    shell1, _ = readme_block()
    logs = tmp_path_factory.mktemp("dev-fleet-logs")
    out, err = open(logs / "out", "w"), open(logs / "err", "w")
    proc = subprocess.Popen(["bash", "-c", shell1], cwd=REPO, env=env, stdout=out, stderr=err,
                            start_new_session=True)  # its own group: the test's Ctrl-C goes to it alone
    deadline = time.time() + 180
    while "\nready:" not in (logs / "out").read_text():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"dev-fleet not ready:\n{(logs / 'out').read_text()}\n{(logs / 'err').read_text()[-3000:]}")
        time.sleep(0.5)
    yield proc, logs
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    out.close()
    err.close()


def ocrfleet(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ocrfleet", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_exit_statuses_and_result_against_the_fleet(fleet, env, tmp_path):
    """0 succeeded, 1 job failed, 2 usage, 3 timeout (no traceback), 6 no result; `result` prints
    the stored JSON or its text. Runs before the test that stops the fleet (file order)."""
    exports = ocrfleet(env, "dev-fleet", "env")
    assert exports.returncode == 0
    pairs = [shlex.split(line)[1].split("=", 1) for line in exports.stdout.splitlines()]
    fleet_env = dict(env, **dict(pairs))
    assert {"OCRFLEET_BROKER_URL", "OCRFLEET_S3_ENDPOINT_URL", "OCRFLEET_ALLOWED_FILE_ROOTS"} <= set(dict(pairs))

    ok = ocrfleet(fleet_env, "submit", f"file://{LINE}", "--regions", "[[0, 0, 120, 30]]", "--wait", "--json")
    assert ok.returncode == 0, ok.stderr
    job_id, record = ok.stdout.splitlines()[:2]
    assert json.loads(record)["status"] == "succeeded" and json.loads(record)["summary"]["lines"] == 1

    stored = ocrfleet(fleet_env, "result", job_id)
    result = json.loads(stored.stdout)
    assert stored.returncode == 0 and result["job_id"] == job_id and result["items"][0]["region"] == [0, 0, 120, 30]
    text = ocrfleet(fleet_env, "result", job_id, "--text")
    assert text.returncode == 0 and text.stdout.strip() == result["items"][0]["rec_text"]

    missing = ocrfleet(fleet_env, "submit", f"file://{REPO}/tests/data/real/nope.png", "--wait")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and missing.stdout == ""
    failed_id = re.search(r"job (\w+) failed", missing.stderr).group(1)
    assert ocrfleet(fleet_env, "result", failed_id, "--text").returncode == 1

    usage = ocrfleet(fleet_env, "submit", "ftp://x/y.png")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    unknown = ocrfleet(fleet_env, "result", "no-such-job")
    assert unknown.returncode == 6 and "no stored result" in unknown.stderr

    # no GPU worker consumes ocr.gpu here: --wait gives up
    late = ocrfleet(fleet_env, "submit", f"file://{LINE}", "--device", "gpu", "--wait", "--timeout", "1")
    assert late.returncode == 3 and "Traceback" not in late.stderr and "ocrfleet result" in late.stderr


def test_readme_fleet_recognises_a_line_and_stops_on_ctrl_c(fleet, env):
    from ocrfleet import TextRecognition

    proc, logs = fleet
    _, shell2 = readme_block()
    out = subprocess.run(["bash", "-c", shell2], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    expected = TextRecognition(model_name="PP-OCRv5_mobile_rec").predict(str(LINE))[0]["rec_text"]
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected and expected, (out.stdout, expected)  # the text only, the engine's

    env_file = Path(env["OCRFLEET_HOME"]) / "dev-fleet.env"
    assert env_file.stat().st_mode & 0o077 == 0 and "OCRFLEET_S3_ENDPOINT_URL" in env_file.read_text()
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(children) == 2  # weed mini and the worker
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    assert proc.wait(90) == 0
    text = (logs / "out").read_text()
    assert "SIGINT: stopping" in text and text.rstrip().endswith("stopped.")
    assert not env_file.exists()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} left running"
    gone = ocrfleet(env, "dev-fleet", "env")
    assert gone.returncode == 4 and "no dev fleet is running" in gone.stderr
