"""Issue 23, item 7: one option vocabulary. ``--batch``, ``--seq-len``, ``--threads`` and
``--runtimes`` take the same forms in verify, bench, run and compare (comma lists; verify runs
at each combination, run benches each length and verifies at the longest); a list where one
value is meant is refused with the reason; bare ``lstm-bench`` prints its help on stderr and
exits 2."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from hostile import assert_bad_input, run_cli
from lstm_bench.cli import COMMANDS, _Parser, main

SAME = ["--batch", "1,8", "--seq-len", "5,6", "--threads", "1,2", "--runtimes", "numpy,ort-cpu"]


@pytest.mark.parametrize("command, positional", [
    ("verify", ["m.onnx"]), ("bench", ["m.onnx"]), ("run", []),
    ("compare", ["a.onnx", "b.onnx"])])
def test_the_four_options_parse_alike_in_every_command(command, positional):
    parser = _Parser(prog=f"lstm-bench {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    args = parser.parse_args([*positional, *SAME])
    assert (args.batch, args.seq_len, args.threads, args.runtimes) == \
        ([1, 8], [5, 6], [1, 2], ["numpy", "ort-cpu"])


def test_bare_lstm_bench_prints_help_on_stderr_and_exits_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: lstm-bench" in captured.err and "commands:" in captured.err


def test_verify_runs_at_each_batch_and_thread_count(tiny, tmp_path, capsys):
    out = tmp_path / "v.json"
    rc, stdout, _ = run_cli(capsys, "verify", tiny, "--runtimes", "numpy", "--no-streaming",
                            "--no-second-shape", "--batch", "1,3", "--seq-len", "7",
                            "--threads", "1,2", "--json", out, "--junit-xml", tmp_path / "j.xml")
    assert rc == 0, stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "lstm-bench/verify-sweep/1" and doc["passed"] is True
    shapes = [r["shape"] for r in doc["reports"]]
    assert shapes == [f"batch {b}, seq_len 7, threads {n}" for b in (1, 3) for n in (1, 2)]
    assert [r["inputs"]["batch"] for r in doc["reports"]] == [1, 1, 3, 3]
    assert "4 of 4: batch 3, seq_len 7, threads 2" in stdout
    assert (tmp_path / "j.xml").read_text().count("<testsuite ") == 4


def test_one_shape_keeps_verify_s_report(tiny, tmp_path, capsys):
    out = tmp_path / "v.json"
    rc, _, _ = run_cli(capsys, "verify", tiny, "--runtimes", "numpy", "--no-streaming",
                       "--threads", "2", "--json", out)
    assert rc == 0
    assert json.loads(out.read_text())["schema"] == "lstm-bench/verify/1"


def test_a_sweep_with_inputs_is_refused(tiny, tmp_path, capsys):
    feeds = tmp_path / "in.npz"
    np.savez(feeds, X=np.zeros((10, 1, 2), np.float32))
    assert_bad_input(run_cli(capsys, "verify", tiny, "--inputs", feeds, "--batch", "1,8"),
                     "--batch 1,8: one value here (--inputs fixes the batch)")


def test_run_measures_the_lengths_asked_and_verifies_at_the_longest(tiny, tmp_path, capsys):
    rc, stdout, _ = run_cli(capsys, "run", "--model", tiny, "--out", tmp_path, "--runtimes",
                            "numpy", "--batch", "1", "--seq-len", "5,9", "--min-time", "0",
                            "--span", "0", "--quiet", "--no-history")
    assert rc == 0, stdout
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    bench = json.loads((folder / "bench.json").read_text())
    lengths = {r["seq_len"] for r in bench["results"] if r.get("mode", "sequence") == "sequence"}
    assert lengths == {5, 9}
    assert json.loads((folder / "verify.json").read_text())["inputs"]["seq_len"] == 9
