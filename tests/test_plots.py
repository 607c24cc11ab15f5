"""The report's and the history page's plots, checked by what they draw (lines, rows, labels,
axes), never by pixels."""

import numpy as np
import pytest

from lstm_bench.bench import history
from lstm_bench.bench.series import load_series
from lstm_bench.bench.history_page import _plot
from lstm_bench.bench.plots import SLOW_FACTOR, latency_vs_threads, streaming_latency, \
    throughput_vs_batch, value_axis
from lstm_bench.bench.report import BenchReport
from lstm_bench.bench.stats import Measurement

RUNTIMES = ("ort-cpu", "numpy", "onnx-reference")


def row(runtime, batch=1, threads=1, ms=1.0, seq_len=100, spread=0.02, seed=0, mode="sequence"):
    rng = np.random.default_rng(seed)
    samples = tuple(int(ms * 1e6 * f) for f in rng.lognormal(0, spread, 60))
    return Measurement(runtime, batch, seq_len, threads, samples, mode=mode)


def labelled_lines(ax):
    """Label -> the data line, of plain lines and of lines with error bars (containers)."""
    lines = {line.get_label(): line for line in ax.get_lines()
             if not line.get_label().startswith("_")}
    lines.update({c.get_label(): c.lines[0] for c in ax.containers if c.lines[0] is not None})
    return lines


def test_latency_against_threads_draws_one_line_per_runtime_across_the_thread_counts():
    rows = [row(r, batch=b, threads=t, ms=(i + 1) * b / t)
            for i, r in enumerate(RUNTIMES) for b in (1, 8) for t in (1, 2, 4)]
    fig = latency_vs_threads(rows)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["batch 1, T 100", "batch 8, T 100"]
    for ax in panels:
        lines = labelled_lines(ax)
        assert sorted(lines) == sorted(RUNTIMES)  # one per runtime, not per (runtime, threads)
        for line in lines.values():
            assert list(line.get_xdata()) == [1, 2, 4] and line.get_marker() == "o"
            assert line.get_linestyle() == "-"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(RUNTIMES)


def test_streaming_with_one_batch_gives_each_runtime_its_own_row_with_p50_and_p99():
    rows = [row(r, ms=0.1 * (i + 1), spread=0.5, seed=i, mode="streaming", seq_len=1)
            for i, r in enumerate(RUNTIMES)]
    (ax,) = streaming_latency(rows).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(RUNTIMES)
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    diamonds = [line for line in ax.get_lines() if line.get_marker() == "D"]
    assert len(dots) == len(diamonds) == len(rows)
    assert [line.get_ydata()[0] for line in dots] == [0, 1, 2]  # one row each: no overlap
    for m, dot, diamond in zip(rows, dots, diamonds):
        assert dot.get_xdata()[0] == pytest.approx(m.stats.median)
        assert diamond.get_xdata()[0] == pytest.approx(m.stats.p99)
        assert diamond.get_ydata()[0] == dot.get_ydata()[0]
    written = [t.get_text() for t in ax.texts]
    assert len(written) == 3 and all("p50" in t and "p99" in t for t in written)


def test_streaming_with_several_batches_and_chunks_labels_the_batch_and_splits_the_chunks():
    rows = [row(r, batch=b, ms=c * 0.1, mode="streaming", seq_len=c)
            for r in RUNTIMES[:2] for b in (1, 8) for c in (1, 10)]
    axes = streaming_latency(rows).axes
    assert [ax.get_title() for ax in axes] == ["streaming, chunk 1 step per call",
                                               "streaming, chunk 10 steps per call"]
    for ax in axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            "ort-cpu, b=1", "ort-cpu, b=8", "numpy, b=1", "numpy, b=8"]
    # per step: a chunk of 10 steps at 1 ms per call is 0.1 ms per step
    dots = [line for line in axes[1].get_lines() if line.get_marker() == "o"]
    assert dots[0].get_xdata()[0] == pytest.approx(0.1, rel=0.1)


def test_throughput_leaves_a_far_slower_runtime_out_and_names_it_on_a_plain_axis():
    rows = [row("ort-cpu", batch=b, ms=0.1 * b ** 0.5) for b in (1, 8, 32)]
    rows += [row("numpy", batch=b, ms=0.3 * b ** 0.5) for b in (1, 8, 32)]
    rows += [row("onnx-reference", batch=b, ms=SLOW_FACTOR * 0.2 * b ** 0.5) for b in (1, 8, 32)]
    (ax,) = [ax for ax in throughput_vs_batch(rows).axes if ax.get_visible()]
    assert sorted(labelled_lines(ax)) == ["numpy", "ort-cpu"]
    assert f"not drawn, under 1/{SLOW_FACTOR} of the fastest: onnx-reference" in ax.get_xlabel()
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0


def test_a_runtime_slower_only_at_some_batches_stays_in_the_plot():
    rows = [row("ort-cpu", batch=b, ms=0.1) for b in (1, 8)]
    rows += [row("numpy", batch=1, ms=0.1 * SLOW_FACTOR * 2), row("numpy", batch=8, ms=0.2)]
    (ax,) = [ax for ax in throughput_vs_batch(rows).axes if ax.get_visible()]
    assert sorted(labelled_lines(ax)) == ["numpy", "ort-cpu"] and "not drawn" not in \
        ax.get_xlabel()


def labelled_ticks(ax, axis):
    """The values of the labelled major ticks inside the view."""
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    ticks = ax.get_yticks() if axis == "y" else ax.get_xticks()
    return [t for t in ticks if lo <= t <= hi]


@pytest.mark.parametrize("lo, hi, scale, least", [(0.06, 0.09, "linear", 3),
                                                  (0.06, 3.0, "log", 5),
                                                  (0.001, 1000.0, "log", 6)])
def test_value_axes_carry_enough_labels_to_read_a_value(lo, hi, scale, least):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot([0, 1], [lo, hi])
    value_axis(ax.yaxis, lo, hi)
    ax.figure.canvas.draw()  # tick positions and labels are settled at draw time
    assert ax.get_yscale() == scale
    ticks = labelled_ticks(ax, "y")
    assert len(ticks) >= least
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert all("^" not in text and "e" not in text for text in labels)


def recorded(tmp_path, runs):
    db = tmp_path / "h.sqlite"
    for run in range(runs):
        ms = [row(name, ms=f * (1 + 0.01 * run), seed=run) for name, f in
              (("ort-cpu", 0.07), ("numpy", 0.8), ("onnx-reference", 3.0))]
        history.record(BenchReport(model={"path": "m.onnx", "sha256": "ab" * 32},
                                   machine={"cpu": "test cpu", "git_commit": f"c{run}",
                                            "timestamp": f"2026-11-27T00:0{run}:00+0000"},
                                   settings={}, measurements=ms), db, "bench")
    return load_series(db)


def test_history_of_one_run_draws_a_row_per_runtime_not_a_column_of_dots(tmp_path):
    (ax,) = _plot(recorded(tmp_path, 1)).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(RUNTIMES)
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(line.get_ydata()[0] for line in dots) == [0, 1, 2]
    assert len(ax.texts) == 3  # each median written beside its dot


def test_history_of_several_runs_draws_lines_over_the_runs_on_a_labelled_axis(tmp_path):
    fig = _plot(recorded(tmp_path, 3))
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    assert sorted(lines) == sorted(RUNTIMES)
    assert all(list(line.get_xdata()) == [0, 1, 2] for line in lines.values())
    fig.canvas.draw()
    assert ax.get_yscale() == "log" and len(labelled_ticks(ax, "y")) >= 5
