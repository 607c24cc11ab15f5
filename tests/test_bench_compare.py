"""`lstm-bench compare` on synthetic reports: a real shift fails, noise and small shifts do not."""

import json

import numpy as np
import pytest

from lstm_bench.bench.compare import compare_samples
from lstm_bench.cli import main


def samples(seed, n=300, median_ms=1.0, spread=0.05):
    rng = np.random.default_rng(seed)
    return (median_ms * 1e6 * rng.lognormal(0.0, spread, n)).astype(int).tolist()


def report(path, rows):
    doc = {"results": [{"runtime": r, "batch": 1, "seq_len": 100, "threads": 2,
                        "latency_ms": {"median": float(np.median(s)) / 1e6},
                        "throughput": {}, "samples_ns": s} for r, s in rows]}
    path.write_text(json.dumps(doc))
    return str(path)


def run_compare(tmp_path, base_rows, new_rows, *extra):
    return main(["compare", report(tmp_path / "base.json", base_rows),
                 report(tmp_path / "new.json", new_rows), *extra])


def test_same_distribution_is_no_regression(tmp_path, capsys):
    assert run_compare(tmp_path, [("ort-cpu", samples(1))], [("ort-cpu", samples(2))]) == 0
    assert "no regression" in capsys.readouterr().out


def test_a_real_slowdown_is_a_regression(tmp_path, capsys):
    rc = run_compare(tmp_path, [("ort-cpu", samples(1)), ("numpy", samples(3))],
                     [("ort-cpu", samples(2, median_ms=1.2)), ("numpy", samples(4))])
    assert rc == 1
    out = capsys.readouterr().out
    assert "1 regression(s) of 2 rows" in out


def test_a_significant_shift_below_the_threshold_passes(tmp_path):
    base, new = samples(1, spread=0.01), samples(2, median_ms=1.03, spread=0.01)
    assert compare_samples(base, new, fail_above=5)[3] == "slower"
    assert run_compare(tmp_path, [("ort-cpu", base)], [("ort-cpu", new)]) == 0
    assert run_compare(tmp_path, [("ort-cpu", base)], [("ort-cpu", new)], "--fail-above", "2") == 1


def test_a_large_shift_within_noise_passes(tmp_path):
    base, new = samples(1, n=4, spread=0.8), samples(2, n=4, median_ms=1.3, spread=0.8)
    change, p_slower, _, verdict = compare_samples(base, new, fail_above=5)
    assert p_slower > 0.01 and verdict == "within noise"
    assert run_compare(tmp_path, [("ort-cpu", base)], [("ort-cpu", new)]) == 0


def test_faster_is_never_a_failure(tmp_path):
    assert run_compare(tmp_path, [("ort-cpu", samples(1))],
                       [("ort-cpu", samples(2, median_ms=0.5))]) == 0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON"),
    ("[1, 2]", "no top-level 'results'"),
    ('{"results": [{"runtime": "x"}]}', "lacks"),
    ('{"results": [{"runtime": "x", "batch": 1, "seq_len": 1, "threads": 1, "latency_ms": {},'
     ' "throughput": {}, "samples_ns": []}]}', "non-empty"),
    ('{"results": [{"runtime": "x", "batch": "a", "seq_len": 1, "threads": 1, "latency_ms": {},'
     ' "throughput": {}, "samples_ns": [1]}]}', "integer batch"),
])
def test_malformed_reports_exit_2_with_one_line(tmp_path, capsys, content, message):
    good = report(tmp_path / "good.json", [("ort-cpu", samples(1))])
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", good, str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_file_and_disjoint_reports_exit_2(tmp_path, capsys):
    good = report(tmp_path / "good.json", [("ort-cpu", samples(1))])
    assert main(["compare", good, str(tmp_path / "missing.json")]) == 2
    other = report(tmp_path / "other.json", [("numpy", samples(1))])
    assert main(["compare", good, other]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such report" in err[0] and "share no" in err[1]


def test_a_nan_threshold_is_bad_input(tmp_path, capsys):
    rows = [("ort-cpu", samples(1))]
    assert run_compare(tmp_path, rows, rows, "--fail-above", "nan") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fail-above" in err[0]


def test_a_report_with_a_row_twice_is_bad_input():
    from lstm_bench.bench.compare import compare_reports
    from lstm_bench.errors import LSTMBenchError

    row = {"runtime": "ort-cpu", "batch": 1, "seq_len": 10, "threads": 1, "samples_ns": [1, 2, 3]}
    with pytest.raises(LSTMBenchError, match="two rows"):
        compare_reports({"results": [row, dict(row)]}, {"results": [row]})


def test_machine_drift_is_reported_from_the_calibration():
    from lstm_bench.bench.compare import machine_drift

    base = {"peak_gflops": 150.0, "machine": {"cpu": "X"}}
    assert machine_drift(base, {"peak_gflops": 160.0, "machine": {"cpu": "X"}}) is None
    warning = machine_drift(base, {"peak_gflops": 290.0, "machine": {"cpu": "X"}})
    assert warning and "+93%" in warning and "150 -> 290" in warning
    assert "different CPUs" in machine_drift(base, {"peak_gflops": 150.0, "machine": {"cpu": "Y"}})
