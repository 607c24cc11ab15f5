"""What the reports say, word for word where it matters: a margin inside the noise is a tie,
a tie between thread counts goes to fewer threads, plurals agree, streaming rows are labelled
per call and per step (never seq/s), and every latency table says its figure is the median of
the block medians. Built from real ``Measurement``s with chosen block medians."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

from lstm_bench.bench.decision import decide
from lstm_bench.bench.markdown import render_markdown
from lstm_bench.bench.page import render_html
from lstm_bench.bench.report import BenchReport, load_report, write_reports
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.bench.text import noise_line
from lstm_bench.cli.terminal import print_report


def row(runtime, median_ms, spread=0.0, threads=1, batch=1, seq_len=100, blocks=20,
        **streaming):
    """A measurement of ``blocks`` blocks of 3 equal calls, block medians spread evenly by
    ``spread`` (relative) on both sides of ``median_ms``, their median."""
    medians = median_ms * (1 + spread * np.linspace(-1, 1, blocks))
    samples = tuple(int(m * 1e6) for m in medians for _ in range(3))
    return Measurement(runtime, batch, seq_len, threads, samples,
                       blocks=tuple(Block(0, i, i, 3) for i in range(blocks)),
                       flops=8 * 50 * 51 * batch * seq_len, peak_gflops=50.0, **streaming)


def report(*measurements, **kw):
    return BenchReport(model={"path": "m.onnx"}, machine={}, settings={},
                       measurements=list(measurements), **kw)


def test_a_margin_inside_the_noise_is_a_tie_not_a_win():
    tied = report(row("ort-cpu", 1.343, 0.05), row("openvino-cpu-static", 1.348, 0.05))
    (shape,) = decide(tied).shapes
    assert shape.clear is False and shape.to_dict()["tie"] is True
    sentence = shape.sentence()
    assert "ort-cpu and openvino-cpu-static are tied within noise: " in sentence
    assert re.search(r"tied within noise: 1\.3\d+ vs 1\.3\d+ ms", sentence)
    assert "faster" not in sentence
    # CIs apart: a win, with its margin
    clear = decide(report(row("ort-cpu", 1.0, 0.01), row("numpy", 2.0, 0.01))).shapes[0]
    assert clear.sentence().startswith("batch 1, T 100: ort-cpu, 1 ms, 2.00x faster than numpy")


def test_a_tie_between_thread_counts_goes_to_fewer_threads():
    rows = [row("ort-cpu", 0.320642, 0.02, threads=1), row("ort-cpu", 0.320031, 0.02, threads=2),
            row("numpy", 3.0, 0.01, threads=1), row("numpy", 2.0, 0.01, threads=2)]
    (shape,) = decide(report(*rows)).shapes
    assert (shape.winner.runtime, shape.winner.threads) == ("ort-cpu", 1)
    assert shape.winner_fastest.threads == 2
    sentence = shape.sentence()
    assert sentence.startswith("batch 1, T 100: ort-cpu at 1 thread, 0.32")
    assert "1 thread rather than 2" in sentence and "fewer threads" in sentence
    # numpy's 2 threads are clearly faster than its 1: more threads win when they buy time
    assert "numpy at 2 threads (2 ms)" in sentence


def test_plurals():
    one = report(row("ort-cpu", 1.0, 0.5))  # IQR 50 %: noisy
    assert noise_line(one).startswith("noise: 1 of 1 row has an IQR above")
    two = report(row("ort-cpu", 1.0, 0.5), row("numpy", 2.0, 0.01))
    assert noise_line(two).startswith("noise: 1 of 2 rows has an IQR above")
    text = render_markdown(report(row("ort-cpu", 1.0, threads=1), row("ort-cpu", 1.0, threads=2)))
    assert "### 1 thread\n" in text and "### 2 threads\n" in text and "1 threads" not in text


def streaming_report():
    stream = dict(mode="streaming", stateful_variant=True)  # chunk: the seq_len
    return report(row("ort-cpu", 1.0, 0.01), row("numpy", 2.0, 0.01),
                  row("ort-cpu", 0.08, 0.01, seq_len=4, batch=8, **stream),
                  row("numpy", 0.2, 0.01, seq_len=4, batch=8, **stream), peak_gflops=50.0)


def md_tables(text):
    """{first header cell line: [row dicts]} of every Markdown table."""
    tables, lines = {}, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| runtime") and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            body = []
            for cells in lines[i + 2:]:
                if not cells.startswith("|"):
                    break
                body.append(dict(zip(header, (c.strip() for c in cells.strip("|").split("|")))))
            tables[line] = body
    return tables


def test_streaming_rows_are_per_call_and_per_step_in_every_report(tmp_path):
    doc = streaming_report()
    # the same figures from the report in memory and read back from its JSON (where the
    # GEMM peak is applied to every CPU row)
    write_reports(doc, json=tmp_path / "s.json")
    for rep in (doc, load_report(tmp_path / "s.json")):
        tables = md_tables(render_markdown(rep))
        (stream_header,) = [h for h in tables if "chunk" in h]
        assert "seq/s" not in stream_header and "% peak" not in stream_header
        assert "steps/s" in stream_header and "p50 ms/step" in stream_header \
            and "p99 ms/step" in stream_header
        ort = next(r for r in tables[stream_header] if r["runtime"] == "ort-cpu")
        for p in ("p50", "p99"):  # 4 significant figures each
            assert float(ort[f"{p} ms/step"]) == pytest.approx(float(ort[f"{p} ms"]) / 4,
                                                                rel=1e-3)
        # 8 streams x 4 steps in 0.08 ms
        assert float(ort["steps/s"].replace(",", "")) == pytest.approx(400_000, rel=1e-4)
        (seq_header,) = [h for h in tables if "seq_len" in h]
        assert {r["runtime"] for r in tables[seq_header]} == {"ort-cpu", "numpy"}
        assert all(r["% peak"] != "–" for r in tables[seq_header])  # sequence rows keep it
        page = render_html(rep)
        assert "<h2>Streaming latency</h2>" in page and "<th>p99 ms/step</th>" in page
        for width in (80, 120):
            console = Console(width=width, file=io.StringIO(), record=True)
            print_report(rep, console)
            out = console.export_text()
            stream_part = out[out.index("streaming: latency per call"):]
            header = next(line for line in stream_part.splitlines() if "runtime" in line)
            assert "p50/step" in header and "p99/step" in header and "seq/s" not in header
            assert ("steps/s" in header) == (width >= 100)


def test_captions_say_median_of_block_medians():
    doc = streaming_report()
    md = render_markdown(doc)
    page = render_html(doc)
    console = Console(width=80, file=io.StringIO(), record=True)
    print_report(doc, console)
    out = console.export_text()
    for text in (md, page, out):
        assert "median of the block medians" in text and "over the blocks" in text
        assert "raw samples" not in text and "median of the samples" not in text


def test_compare_files_show_both_p_values_and_the_threshold():
    from lstm_bench.bench.compare import compare_reports
    from lstm_bench.bench.compare_report import Comparison, render_html, \
        render_markdown as compare_md

    def doc(factor):
        return {**report(row("ort-cpu", 1.0 * factor, 0.02), row("numpy", 2.0, 0.02)).to_dict(),
                "model": {"path": "m.onnx", "sha256": "ab" * 32}, "machine": {"cpu": "x"}}

    comparison = Comparison(compare_reports(doc(1.0), doc(1.2)), base="a.json", new="b.json",
                            fail_above=5.0)
    md = compare_md(comparison)
    (header,) = [line for line in md.splitlines() if line.startswith("| runtime")]
    # saved reports (issue 21): the change, the interval its verdict tested and the spread
    # the interval came from; the live form keeps both p values (tests/test_gate.py)
    assert "| change | 90 % interval | spread |" in header and "p (slower)" not in header
    assert "A regression: the whole interval above +5 %" in md
    page = render_html(comparison)
    assert "<th>change</th><th>90 % interval</th><th>spread</th>" in page
    assert "the whole interval above +5 %" in page


def test_progress_lines_count_in_words_that_agree():
    """The live progress line of a sweep: "1 thread", "1 cell", never "1 threads"."""
    from lstm_bench.cli.progress import LiveDisplay

    console = Console(width=100, file=io.StringIO(), force_terminal=True)
    with LiveDisplay(3, console) as live:
        said = []
        for kind, info in (("open", dict(runtime="openvino-cpu", threads=1)),
                           ("timing", dict(cells=1, threads=1)),
                           ("open", dict(runtime="ort-cpu", threads=2)),
                           ("timing", dict(cells=6, threads=2))):
            live(kind, **info)
            said.append(live.progress.tasks[0].description)
    assert said == ["opening openvino-cpu (1 thread)", "timing 1 cell, 1 thread",
                    "opening ort-cpu (2 threads)", "timing 6 cells, 2 threads"]


def test_markdown_notes_are_one_paragraph_each():
    """The streaming note and the noise note, rendered by a real Markdown parser (rich's
    markdown-it): each its own paragraph, not run together."""
    from markdown_it import MarkdownIt

    stream = dict(mode="streaming", stateful_variant=True)
    doc = report(row("ort-cpu", 1.0, 0.5), row("numpy", 0.2, 0.01, seq_len=4, **stream),
                 extra={"streaming": {"note": "timed the stateful variant"}})
    page = MarkdownIt().render(render_markdown(doc))
    paragraphs = re.findall(r"<p>(.*?)</p>", page, re.S)
    starts = ("streaming: timed the stateful variant", "noise: 1 of 2 rows has")
    for start in starts:  # each note starts a paragraph, and no paragraph holds two
        assert sum(p.startswith(start) for p in paragraphs) == 1, (start, paragraphs)
    assert not [p for p in paragraphs if all(s in p for s in starts)]


def test_compare_counts_only_the_rows_it_compared(tmp_path, capsys):
    """BASE has 4 rows, NEW 1 of them: the headline speaks of 1 row compared and says how
    many were only in one report."""
    from lstm_bench.cli import main

    base = report(*(row(name, 1.0, 0.02) for name in ("ort-cpu", "numpy", "onnx-reference",
                                                      "openvino-cpu")))
    new = report(row("ort-cpu", 1.0, 0.02), row("ort-cpu", 1.0, 0.02, batch=4))
    write_reports(base, json=tmp_path / "a.json")
    write_reports(new, json=tmp_path / "b.json")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no regression in 1 row compared; 3 rows only in base, 1 row only in new" in out
    assert "in 4 rows" not in out and "in 5 rows" not in out
