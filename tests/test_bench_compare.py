"""`lstm-bench compare` on synthetic reports: a real shift fails, noise and small shifts do not,
calls are never counted as independent samples, and apples are not compared with oranges."""

import json

import numpy as np
import pytest

from lstm_bench.bench.compare import compare_paired, compare_reports
from lstm_bench.bench.gate import compare_processes
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.cli import main
from lstm_bench.errors import LSTMBenchError

MACHINE = {"cpu": "Some CPU", "cores": 2}
MODEL = {"path": "m.onnx", "sha256": "ab" * 32}


def measurement(runtime, block_medians_ms, calls=5, jitter=0.0, seed=0, processes=1):
    """Blocks of `calls` samples around each block median (exactly it when jitter is 0),
    dealt to `processes` worker processes in turn."""
    rng = np.random.default_rng(seed)
    samples, blocks = [], []
    for i, median in enumerate(block_medians_ms):
        samples += [round(median * 1e6 * f) for f in
                    np.sort(1 + jitter * rng.standard_normal(calls))]
        blocks.append(Block(i % processes, i, i * 10_000_000, calls))
    return Measurement(runtime, 1, 100, 1, tuple(samples), blocks=tuple(blocks))


def blocks(seed, n=30, median_ms=1.0, spread=0.05):
    return (median_ms * np.random.default_rng(seed).lognormal(0.0, spread, n)).tolist()


def doc(rows, model=MODEL, machine=MACHINE):
    return {"schema": "lstm-bench/bench/1", "model": model, "machine": machine,
            "results": [m.as_dict() for m in rows]}


def write(path, document):
    path.write_text(json.dumps(document))
    return str(path)


def run_compare(tmp_path, base_rows, new_rows, *extra):
    return main(["compare", write(tmp_path / "base.json", doc(base_rows)),
                 write(tmp_path / "new.json", doc(new_rows)), *extra])


def test_same_distribution_is_no_regression(tmp_path, capsys):
    assert run_compare(tmp_path, [measurement("ort-cpu", blocks(1))],
                       [measurement("ort-cpu", blocks(2))]) == 0
    assert "no regression in 1 row\n" in capsys.readouterr().out


def test_a_real_slowdown_is_a_regression(tmp_path, capsys):
    rc = run_compare(tmp_path, [measurement("ort-cpu", blocks(1)), measurement("numpy", blocks(3))],
                     [measurement("ort-cpu", blocks(2, median_ms=1.2)),
                      measurement("numpy", blocks(4))])
    assert rc == 1
    assert "1 regression of 2 rows" in capsys.readouterr().out


def test_thousands_of_calls_in_few_blocks_are_few_samples():
    # Two runs of 3 blocks each; inside a block 1000 calls agree closely. Counted as calls
    # the 10 % shift would be "significant" (p ~ 1e-300); counted as blocks it cannot be.
    base = measurement("x", [1.0, 1.0, 1.0], calls=1000, jitter=0.01, seed=1)
    new = measurement("x", [1.1, 1.1, 1.1], calls=1000, jitter=0.01, seed=2)
    (change,) = compare_reports(doc([base]), doc([new]))
    # one process a report: its invocation spread is assumed (issue 21), the shift unproven
    assert not change.regression and change.p_slower > 0.01
    assert change.base_blocks == change.new_blocks == 3
    assert change.change_pct == pytest.approx(10, abs=0.5)
    from scipy.stats import mannwhitneyu
    assert mannwhitneyu(new.samples_ns, base.samples_ns, alternative="greater").pvalue < 1e-100


def test_a_significant_shift_below_the_threshold_passes(tmp_path):
    base, new = blocks(1, spread=0.01), blocks(2, median_ms=1.03, spread=0.01)
    assert compare_processes(base[:6], new[:6], fail_above=5)["verdict"] == "slower"
    # the unit is the worker process (issue 21): six of them in each report
    rows = [measurement("ort-cpu", base, processes=6)], [measurement("ort-cpu", new,
                                                                     processes=6)]
    assert run_compare(tmp_path, *rows) == 0
    # a regression needs the whole interval (here about +1.7 to +4.3 %) above the threshold
    assert run_compare(tmp_path, *rows, "--fail-above", "1") == 1


def test_a_large_shift_within_noise_passes():
    base, new = blocks(1, n=4, spread=0.8), blocks(2, n=4, median_ms=1.3, spread=0.8)
    figures = compare_processes(base, new, fail_above=5)  # four processes each
    assert figures["p_slower"] > 0.01 and figures["verdict"] == "within noise"


def test_faster_is_never_a_failure(tmp_path):
    assert run_compare(tmp_path, [measurement("ort-cpu", blocks(1))],
                       [measurement("ort-cpu", blocks(2, median_ms=0.5))]) == 0


def test_paired_blocks_cancel_the_machine_s_phases():
    # The machine alternates 1 ms and 2 ms phases; NEW costs 8 % more in every round.
    phase = [1.0] * 10 + [2.0] * 10 + [1.0] * 10
    base = [p * f for p, f in zip(phase, blocks(1, spread=0.01))]
    new = [p * 1.08 * f for p, f in zip(phase, blocks(2, spread=0.01))]
    change, p_slower, _, verdict = compare_paired(base, new, fail_above=5)
    assert verdict == "regression" and change == pytest.approx(8, abs=1.5)
    same = [p * f for p, f in zip(phase, blocks(3, spread=0.01))]
    assert compare_paired(base, same, fail_above=5)[3] == "within noise"
    assert compare_paired(base, base, fail_above=5)[:4] == (0.0, 1.0, 1.0, "within noise")


def test_paired_reports_match_blocks_by_round():
    base = measurement("ort-cpu", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    new = measurement("ort-cpu", [1.1, 2.2, 1.1, 2.2, 1.1, 2.2, 1.1, 2.2, 1.1, 2.2])
    (change,) = compare_reports(doc([base]), doc([new], model={"sha256": "other"}), paired=True,
                                allow_different_models=True)
    assert change.test == "wilcoxon (paired blocks)" and change.verdict == "regression"
    assert change.change_pct == pytest.approx(10)


def test_different_models_and_machines_are_refused_unless_allowed(tmp_path, capsys):
    rows = [measurement("ort-cpu", blocks(1))]
    base = write(tmp_path / "base.json", doc(rows))
    other_model = write(tmp_path / "m.json", doc(rows, model={"path": "h64.onnx",
                                                              "sha256": "cd" * 32}))
    other_machine = write(tmp_path / "c.json", doc(rows, machine={"cpu": "Other", "cores": 2}))
    assert main(["compare", base, other_model]) == 2
    assert main(["compare", base, other_machine]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "different models" in err[0] and "different machines" in err[1]
    assert main(["compare", base, other_model, "--allow-different-models"]) == 0
    assert main(["compare", base, other_machine, "--allow-different-machines"]) == 0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON"),
    ("[1, 2]", "no top-level 'results'"),
    ('{"results": []}', "no results"),
    ('{"results": [{"runtime": "x", "batch": 1, "seq_len": 1, "threads": 1, "latency_ms": {},'
     ' "throughput": {}, "samples_ns": [1]}]}', "schema"),
    ('{"schema": "lstm-bench/bench/1", "model": {}, "machine": {}, "results": []}',
     "no results"),
    ('{"results": [{"runtime": "x"}]}', "lacks"),
    ('{"results": [{"runtime": "x", "batch": 1, "seq_len": 1, "threads": 1, "latency_ms": {},'
     ' "throughput": {}, "samples_ns": []}]}', "non-empty"),
    ('{"results": [{"runtime": "x", "batch": "a", "seq_len": 1, "threads": 1, "latency_ms": {},'
     ' "throughput": {}, "samples_ns": [1]}]}', "integer batch"),
    ('{"schema": "lstm-bench/bench/1", "model": {}, "machine": {}, "results": [{"runtime": "x",'
     ' "batch": 1, "seq_len": 1, "threads": 1, "latency_ms": {}, "throughput": {},'
     ' "samples_ns": [1]}]}', "no blocks"),
])
def test_malformed_reports_exit_2_with_one_line(tmp_path, capsys, content, message):
    good = write(tmp_path / "good.json", doc([measurement("ort-cpu", blocks(1))]))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", good, str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_missing_file_disjoint_reports_and_mixed_arguments_exit_2(tmp_path, capsys):
    good = write(tmp_path / "good.json", doc([measurement("ort-cpu", blocks(1))]))
    assert main(["compare", good, str(tmp_path / "missing.json")]) == 2
    other = write(tmp_path / "other.json", doc([measurement("numpy", blocks(1))]))
    assert main(["compare", good, other]) == 2
    assert main(["compare", good, str(tmp_path / "model.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no such report" in err[0] and "share no" in err[1]
    assert "not one of each" in err[2]


def test_a_nan_threshold_is_bad_input(tmp_path, capsys):
    rows = [measurement("ort-cpu", blocks(1))]
    with pytest.raises(SystemExit) as usage_error:  # argparse's, as for every bad option
        run_compare(tmp_path, rows, rows, "--fail-above", "nan")
    assert usage_error.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fail-above" in err[0]


def test_a_report_with_a_row_twice_is_bad_input():
    row = measurement("ort-cpu", blocks(1))
    with pytest.raises(LSTMBenchError, match="two rows"):
        compare_reports(doc([row, row]), doc([row]))


def test_a_streaming_row_is_not_the_sequence_row_of_its_length(tmp_path, capsys):
    """A streaming chunk of 100 steps per call and a whole sequence of 100 are two rows: a
    streaming report against a sequence report shares no row with it."""
    import dataclasses

    sequence = measurement("ort-cpu", blocks(1))
    streaming = dataclasses.replace(measurement("ort-cpu", blocks(2, median_ms=3.0)),
                                    mode="streaming")  # a chunk of 100 steps per call
    assert sequence.key != streaming.key
    out = tmp_path / "verdicts.json"
    assert run_compare(tmp_path, [sequence, streaming], [sequence, streaming],
                       "--json", str(out)) == 0
    keys = [tuple(c["key"]) for c in json.loads(out.read_text())["changes"]]
    assert sorted(keys) == [("ort-cpu", 1, 100, 1, "sequence"),
                            ("ort-cpu", 1, 100, 1, "streaming")]
    assert run_compare(tmp_path, [sequence], [streaming]) == 2  # no row in common


def test_json_and_markdown_verdicts(tmp_path):
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    assert run_compare(tmp_path, [measurement("ort-cpu", blocks(1))],
                       [measurement("ort-cpu", blocks(2, median_ms=1.3))],
                       "--json", str(out_json), "--md", str(out_md)) == 1
    result = json.loads(out_json.read_text())
    assert result["schema"] == "lstm-bench/compare/1" and result["regression"] is True
    (change,) = result["changes"]
    assert change["key"][0] == "ort-cpu" and change["verdict"] == "regression"
    assert change["test"] == "t interval (per-process medians)" and change["base_blocks"] == 30
    assert "| ort-cpu | 1 | 100 | 1 |" in out_md.read_text()


def test_machine_drift_is_reported_from_the_calibration():
    from lstm_bench.bench.compare import machine_drift

    def doc(peak, cpu="X"):
        return {"peak_gflops": peak, "machine": {"cpu": cpu},
                "calibration": [{"threads": 1, "peak_gflops": peak, "reliable": True}]}

    base = doc(150.0)
    assert machine_drift(base, doc(160.0)) is None
    warning = machine_drift(base, doc(290.0))
    assert warning and "+93%" in warning and "150 -> 290" in warning
    assert "different CPUs" in machine_drift(base, doc(150.0, cpu="Y"))


def test_a_busy_machine_is_said_for_each_report(tmp_path, capsys):
    from lstm_bench.bench.machine import usable_cores

    busy = {**MACHINE, "load_average": {"before": [4.0 * usable_cores(), 0, 0], "after": None}}
    rows = [measurement("ort-cpu", blocks(1))]
    assert main(["compare", write(tmp_path / "b.json", doc(rows)),
                 write(tmp_path / "n.json", doc(rows, machine=busy))]) == 0
    out = capsys.readouterr().out
    assert "NEW: the machine was busy" in out and "BASE:" not in out


def test_machine_drift_compares_reliable_calibrations_thread_by_thread():
    from lstm_bench.bench.compare import machine_drift

    def doc(one, two, two_reliable=True):
        return {"machine": {"cpu": "X"}, "peak_gflops": one, "calibration": [
            {"threads": 1, "peak_gflops": one, "reliable": True},
            {"threads": 2, "peak_gflops": two, "reliable": two_reliable}]}

    assert machine_drift(doc(150.0, 260.0), doc(153.0, 255.0)) is None
    warning = machine_drift(doc(150.0, 260.0), doc(150.0, 180.0))
    assert "at 2 threads moved -31%" in warning and "at 1 thread " not in warning
    # an unreliable calibration (a busy moment) says nothing about the machine
    assert machine_drift(doc(150.0, 260.0), doc(150.0, 40.0, two_reliable=False)) is None
