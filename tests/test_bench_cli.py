"""Bad input to `lstm-bench bench` and `lstm-bench run`: exit 2 with one line on stderr; and
`lstm-bench run` end to end on a tiny model, twice, without overwriting the first report."""

import json

import pytest

from lstm_bench.cli import main


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
    assert not list(tmp_path.iterdir())  # nothing written for bad input


def test_run_writes_reports_and_never_overwrites(tiny, tmp_path, capsys):
    argv = ["run", "--model", str(tiny), "--out", str(tmp_path), "--runtimes", "ort-cpu,numpy",
            "--batch", "1,2", "--min-time", "0.002", "--quiet"]
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
    assert "Throughput against batch" in (folders[0] / "bench.html").read_text()
    assert "summary" in out and "ort-cpu" in out


def test_run_on_the_seed(tmp_path, capsys):
    argv = ["run", "--out", str(tmp_path), "--runtimes", "ort-cpu", "--batch", "1",
            "--min-time", "0.002", "--quiet"]
    assert main(argv) == 0
    (folder,) = tmp_path.iterdir()
    assert (folder / "seed.onnx").is_file() and (folder / "bench.html").is_file()
    verified = json.loads((folder / "verify.json").read_text())
    status = {r["runtime"]: r["status"] for r in verified["results"]}
    assert status == {"ort-cpu": "pass", "torch-source": "pass"}  # the checkpoint's own module
