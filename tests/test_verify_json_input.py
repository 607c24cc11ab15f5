"""`bench --verify-json`: verify's report of this model only (its schema and the model's
sha256 checked), shown beside the timings; another model's report or another file refused."""

from __future__ import annotations

import json

import pytest
from hostile import QUICK, assert_bad_input, run_cli


@pytest.fixture(scope="module")
def verified(tmp_path_factory, tiny):
    """verify's JSON of the tiny model (numpy only: fast)."""
    from lstm_bench.cli import main

    path = tmp_path_factory.mktemp("verified") / "v.json"
    assert main(["verify", str(tiny), "--runtimes", "numpy", "--no-streaming",
                 "--json", str(path)]) == 0
    return path


def test_verify_json_records_what_it_is_and_the_models_sha256(verified, tiny):
    import hashlib

    doc = json.loads(verified.read_text())
    assert doc["schema"] == "lstm-bench/verify/1"
    assert doc["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()


def test_bench_takes_the_verify_report_of_its_own_model(verified, tiny, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "bench", tiny, "--verify-json", verified, "--runtimes", "numpy",
                         "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["verify"]["sha256"] == doc["model"]["sha256"]
    assert doc["verify"]["runtimes"]["numpy"]["status"] == "pass"


def test_bench_refuses_another_models_verify_report(verified, fixed, tmp_path, capsys):
    argv = ["bench", fixed, "--verify-json", verified, "--runtimes", "numpy",
            "--json", tmp_path / "b.json", *QUICK]
    assert_bad_input(run_cli(capsys, *argv), "v.json: a verify report of another model",
                     "tiny.onnx", "fixed.onnx", "--allow-different-models")
    assert not (tmp_path / "b.json").exists()
    rc, _, err = run_cli(capsys, *argv, "--allow-different-models")  # asked for: taken
    assert rc == 0, err
    assert json.loads((tmp_path / "b.json").read_text())["verify"]["runtimes"]["numpy"]


def test_bench_refuses_a_file_that_is_not_a_verify_report(verified, tiny, tmp_path, capsys):
    bench_json = tmp_path / "b.json"
    assert run_cli(capsys, "bench", tiny, "--runtimes", "numpy", "--json", bench_json,
                   *QUICK)[0] == 0
    unmarked = {k: v for k, v in json.loads(verified.read_text()).items()
                if k not in ("schema", "sha256")}  # a verify report's fields, no schema
    (tmp_path / "unmarked.json").write_text(json.dumps(unmarked))
    (tmp_path / "other.json").write_text(json.dumps({"results": []}))
    for path, says in ((bench_json, "a bench report, not a verify report"),
                       (tmp_path / "unmarked.json", "not a verify report (schema None"),
                       (tmp_path / "other.json", "not a verify report")):
        assert_bad_input(run_cli(capsys, "bench", tiny, "--verify-json", path, "--runtimes",
                                 "numpy", *QUICK), str(path), says)
