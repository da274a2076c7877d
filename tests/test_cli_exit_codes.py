"""The CLI's documented exit statuses and `submit --regions` shapes (no fleet needed: specs are
built and refused before anything is enqueued; the live statuses are in tests/fleet/test_dev_fleet.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocrfleet import cli, fleet_cli
from ocrfleet.exit_codes import Exit

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_documents_every_exit_status_once():
    table = README.read_text().split("Exit statuses", 1)[1].split("\n\n", 2)[1]
    documented = [int(v) for v in re.findall(r"^\| (\d+) \|", table, re.M)]
    assert documented == [e.value for e in Exit]
    assert len(set(Exit)) == len(Exit)  # distinct


def _spec(argv: list[str]) -> dict:
    from ocrfleet.config.settings import load_settings
    from ocrfleet.producer import Producer

    args = cli.build_parser().parse_args(["submit", *argv])
    inputs, regions = fleet_cli._inputs_and_regions(args)
    return Producer(load_settings(env={})).build_spec(inputs, regions=regions, job_id="j")


@pytest.mark.parametrize("argv, api", [
    # one input: its own boxes or quads, as Producer.submit("s3://b/a.png", regions=[...])
    (["s3://b/a.png", "--regions", "[[1, 2, 30, 40]]"], ("s3://b/a.png", [[1, 2, 30, 40]])),
    (["s3://b/a.png", "--regions", "[[[0, 0], [9, 0], [9, 5], [0, 5]]]"],
     ("s3://b/a.png", [[[0, 0], [9, 0], [9, 5], [0, 5]]])),
    (["s3://b/a.png", "--regions", "[[[1, 2, 30, 40]]]"], (["s3://b/a.png"], [[[1, 2, 30, 40]]])),
    # several inputs: one list (or null) each
    (["s3://b/a.png", "s3://b/b.png", "--regions", "[[[1, 2, 30, 40]], null]"],
     (["s3://b/a.png", "s3://b/b.png"], [[[1, 2, 30, 40]], None])),
])
def test_submit_regions_take_the_python_api_shapes(argv, api):
    from ocrfleet.config.settings import load_settings
    from ocrfleet.producer import Producer

    expected = Producer(load_settings(env={})).build_spec(api[0], regions=api[1], job_id="j")
    got = _spec(argv)
    assert [i.get("regions") for i in got["inputs"]] == [i.get("regions") for i in expected["inputs"]]
    assert got["inputs"][0]["regions"]  # the regions did arrive


@pytest.mark.parametrize("n, regions", [(1, "[[1, 2]]"), (1, "not json"), (1, '[["a", "b", "c", "d"]]'),
                                        (1, "[[-1e400, 0, 1, 1]]"), (2, "[[[1, 2, 3, 4]]]"), (2, "{}")])
def test_malformed_regions_are_usage_errors(n, regions, capsys):
    argv = ["submit", *["s3://b/a.png", "s3://b/b.png"][:n], "--regions", regions]
    assert cli.main(argv) == Exit.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


@pytest.mark.parametrize("flag, value", [("--max-forgetting", "101"), ("--backbone-lr-scale", "2"),
                                         ("--patience", "0"), ("--augment", "-1"), ("--width-scale", "9")])
def test_submit_finetune_options_reach_the_spec_check(flag, value, capsys):
    """Each fine-tune option of ``ocrfleet submit-finetune`` lands in the spec under its name: an
    out-of-range value is refused by the spec check (usage error naming it), before any enqueue."""
    argv = ["submit-finetune", "--labels", "s3://b/t.tsv", "--output", "s3://m/o", flag, value]
    assert cli.main(argv) == Exit.USAGE
    assert flag[2:].replace("-", "_") in capsys.readouterr().err
