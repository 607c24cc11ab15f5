"""Bad input to `lstm-bench bench` and `lstm-bench run`: exit 2 with one line on stderr; and
`lstm-bench run` end to end on a tiny model, twice, without overwriting the first report."""

import json

import numpy as np
import pytest

from lstm_bench.cli import main
from lstm_bench.exporters.weights import export_weights
from lstm_bench.spec import LSTMSpec, LSTMWeights


@pytest.fixture(scope="module")
def not_lstm(tmp_path_factory):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", "B", 2])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "relu", [x], [y])
    path = tmp_path_factory.mktemp("model") / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), str(path))
    return path


def one_error_line(capsys, argv, *contains):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1, err
    for text in contains:
        assert text in err[0], err[0]


@pytest.mark.parametrize("extra, contains", [
    (["--batch", "0"], "--batch: 0 is below 1"),
    (["--batch", ""], "--batch: empty"),
    (["--seq-len", "4,x"], "'x' is not an integer"),
    (["--threads", "-1"], "--threads: -1"),
    (["--runtimes", "nope"], "unknown nope"),
    (["--runtimes", ","], "--runtimes: empty"),
    (["--min-time", "-1"], "--min-time"),
    (["--batch", "1.5"], "not an integer"),
    (["--threads", "1000000000"], "--threads: 1000000000 is above the limit"),
    (["--threads", "1023"], "--threads: 1023 is outside 1.."),  # 4 x the cores of any test VM
    (["--span", "-1"], "--span"),
    (["--processes", "0"], "--processes"),
    (["--min-reps", "-5"], "--min-reps: -5 is below 1"),
    (["--max-reps", "0"], "--max-reps: 0 is below 1"),
])
def test_bench_bad_options(tiny, capsys, extra, contains):
    one_error_line(capsys, ["bench", str(tiny), "--quiet", "--no-calibrate", *extra], contains)


def test_bench_missing_model(tmp_path, capsys):
    one_error_line(capsys, ["bench", str(tmp_path / "missing.onnx")], "no such model file")


def test_bench_not_an_onnx_file(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 not a protobuf" * 10)
    one_error_line(capsys, ["bench", str(junk)], "junk.onnx")


def test_bench_a_model_without_lstm(not_lstm, capsys):
    one_error_line(capsys, ["bench", str(not_lstm), "--quiet"], "has no LSTM node")


def test_bench_verify_json_must_be_a_verify_report(tiny, tmp_path, capsys):
    bad = tmp_path / "v.json"
    bad.write_text('{"nothing": 1}')
    one_error_line(capsys, ["bench", str(tiny), "--verify-json", str(bad)], "verify")


def test_run_bad_input(tmp_path, capsys):
    one_error_line(capsys, ["run", "--model", str(tmp_path / "missing.onnx"), "--out",
                            str(tmp_path)], "no such model file")
    one_error_line(capsys, ["run", "--batch", "0", "--out", str(tmp_path)], "--batch")
    one_error_line(capsys, ["run", "--ort-option", "no_such_knob=1", "--out", str(tmp_path)],
                   "--ort-option no_such_knob")
    assert not list(tmp_path.iterdir())  # nothing written for bad input


def test_run_writes_reports_and_never_overwrites(tiny, tmp_path, capsys):
    argv = ["run", "--model", str(tiny), "--out", str(tmp_path), "--runtimes", "ort-cpu,numpy",
            "--batch", "1,2", "--min-time", "0.002", "--span", "0", "--quiet",
            "--ort-option", "intra_op_spinning=0"]
    assert main(argv) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 2
    assert out.count("earlier runs are kept") == 2
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == {"bench.json", "bench.md", "bench.html",
                                                      "verify.json"}
    doc = json.loads((folders[0] / "bench.json").read_text())
    assert {r["runtime"] for r in doc["results"]} == {"ort-cpu", "numpy"}
    assert {r["batch"] for r in doc["results"]} == {1, 2}
    assert doc["verify"]["runtimes"]["ort-cpu"]["status"] == "pass"
    ort_rows = [r for r in doc["results"] if r["runtime"] == "ort-cpu"]
    assert ort_rows and all(r["ort_options"] == {"intra_op_spinning": "0"} for r in ort_rows)
    verify = json.loads((folders[0] / "verify.json").read_text())
    ort = next(r for r in verify["results"] if r["runtime"] == "ort-cpu")
    assert ort["settings"]["ort_options"] == {"intra_op_spinning": "0"}
    assert "Throughput against batch" in (folders[0] / "bench.html").read_text()
    assert "summary" in out and "ort-cpu" in out


def test_run_on_the_seed(tmp_path, capsys):
    argv = ["run", "--out", str(tmp_path), "--runtimes", "ort-cpu", "--batch", "1",
            "--min-time", "0.002", "--span", "0", "--quiet"]
    assert main(argv) == 0
    (folder,) = tmp_path.iterdir()
    assert (folder / "seed.onnx").is_file() and (folder / "bench.html").is_file()
    verified = json.loads((folder / "verify.json").read_text())
    status = {r["runtime"]: r["status"] for r in verified["results"]}
    assert status == {"ort-cpu": "pass", "torch-source": "pass"}  # the checkpoint's own module


FAST = ["--span", "0", "--blocks", "4", "--min-time", "0", "--min-reps", "4", "--quiet"]


def test_bench_records_blocks_processes_threads_and_load(tiny, tmp_path):
    """Two worker processes (spawned afresh): every block says which one took it, and the
    rows say the thread count the runtimes were opened with."""
    out = tmp_path / "b.json"
    argv = ["bench", str(tiny), "--runtimes", "ort-cpu,numpy", "--batch", "1,2", "--seq-len",
            "3", "--processes", "2", "--no-calibrate", "--json", str(out), *FAST]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["processes"] == 2 and doc["settings"]["span"] == 0
    assert set(doc["machine"]["load_average"]) == {"before", "after", "other_cores"}
    assert doc["machine"]["load_average"]["other_cores"] >= 0
    assert doc["machine"]["thread_settings"]["threads"] == [1]
    # the machine's speed probe beside the rows, in both workers (bench.speed), even with no
    # calibration: it is what compare divides a report's figures by
    (probe,) = doc["machine"]["speed"]
    assert probe["threads"] == 1 and len(probe["process_ms"]) == 2 and probe["median_ms"] > 0
    assert probe["probe"] == "machine speed probe" and probe["numpy"] == np.__version__
    assert len(doc["results"]) == 4
    for row in doc["results"]:
        assert row["threads"] == 1 and row["processes"] == [0, 1]
        assert row["block_count"] == len(row["blocks"]) == 4  # 2 blocks in each worker
        assert sum(b["calls"] for b in row["blocks"]) == len(row["samples_ns"])
        starts = [b["start_s"] for b in row["blocks"]]
        assert starts == sorted(starts)  # one time axis across the workers


def test_compare_two_models_live(tiny, tmp_path, capsys):
    """`compare A.onnx B.onnx`: both models in one rotation, judged on paired blocks; the
    verdict itself is timing (scripts measure it), the plumbing is checked here."""
    other = tmp_path / "other.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=8)), other)
    out = tmp_path / "ab.json"
    rc = main(["compare", str(tiny), str(other), "--batch", "1,2", "--seq-len", "3",
               "--json", str(out), *FAST])
    assert rc in (0, 1)  # a regression or not is the machine's business here
    result = json.loads(out.read_text())
    assert result["regression"] == (rc == 1)
    assert [(c["key"][0], c["key"][1], c["test"], c["base_blocks"], c["new_blocks"])
            for c in result["changes"]] == [
        ("ort-cpu", 1, "wilcoxon (paired blocks)", 4, 4),
        ("ort-cpu", 2, "wilcoxon (paired blocks)", 4, 4)]
    assert result["base"] == str(tiny) and result["new"] == str(other)
    assert "changes" in capsys.readouterr().out
