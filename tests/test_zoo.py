"""The zoo of shipped-model shapes (tests/zoo.py) through verify and bench, as users run them.

Two kinds of test per model:
- the file computes what its framework computes (onnxruntime against torch / Keras, float32
  tolerance, at a batch and length other than the export's example): these hold today;
- issue 19's "done when": the default ``verify`` reaches a verdict per runtime (exit 0 or 1 and
  a complete JSON report), or exits 2 with one line naming what to pass (``--shape``,
  ``--value``) and then, given it, a verdict; ``bench`` with two runtimes (both can run every
  zoo model) writes its report with both measured.

Before issue 19, frontend, packed_state_vad and crnn had their audio length or image width fed
as the batch size (the truth failed, or bench ranked an empty sequence), keras_masked stopped
at 64 steps, and kws_state, seq2seq, no_bias and linear_steps killed verify (onnxruntime
segfaults creating their float16 copy's session); every one of these tests failed then.
"""

import json

import numpy as np
import pytest

from lstm_bench.runtimes.registry import RUNTIMES

from hostile import QUICK, assert_bad_input, run_cli
from zoo import KERAS_STEPS, ZOO, build_zoo, onnxruntime_outputs

# a verdict, as verify writes it
STATUSES = {"pass", "fail", "drift", "skip", "error", "crashed"}


@pytest.fixture(scope="session")
def zoo_files(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("zoo"))


# --- the files compute what their frameworks compute --------------------------------------

@pytest.mark.parametrize("name", list(ZOO))
def test_onnx_file_agrees_with_its_framework(name, zoo_files):
    entry = ZOO[name]
    feeds = entry.feeds()
    got, want = onnxruntime_outputs(zoo_files[name], feeds), entry.expected(feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_packed_state_vad_branches_differ_and_agree(zoo_files):
    """Both sample rates, each through its own branch (window 64 hop 32; 32 and 16)."""
    entry = ZOO["packed_state_vad"]
    feeds = dict(entry.feeds(), sr=np.array(8000, np.int64))
    got, want = onnxruntime_outputs(zoo_files["packed_state_vad"], feeds), entry.expected(feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    other = onnxruntime_outputs(zoo_files["packed_state_vad"], entry.feeds())
    assert not np.allclose(got[0], other[0])


def test_baked_export_keeps_the_example_shape(zoo_files):
    """torch's default exporter fixes the example's [20, 5, 12]; the TorchScript one does not."""
    import onnx

    dims = lambda path: [d.dim_value or d.dim_param for d in  # noqa: E731
                         onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims(zoo_files["stacked_baked"]) == [20, 5, 12]
    assert dims(zoo_files["stacked"]) == ["seq_len", "batch", 12]


# --- verify and bench reach a verdict ----------------------------------------------------

def _verify(path, folder, capsys, *extra):
    """(exit code, stderr, report path) of ``lstm-bench verify PATH EXTRA --json``."""
    report = folder / f"verify{len(list(folder.glob('verify*.json')))}.json"
    rc, _, err = run_cli(capsys, "verify", str(path), *extra, "--json", str(report))
    return rc, err, report


def _complete(report, runtimes) -> dict:
    """The report's verdicts, each requested runtime present with a verdict."""
    data = json.loads(report.read_text())
    for one in data.get("reports", [data]):  # a model with If branches: a report per branch
        statuses = {row["runtime"]: row["status"] for row in one["results"]}
        assert set(statuses) == set(runtimes), statuses
        assert all(status in STATUSES for status in statuses.values()), statuses
    return data


def _answered(name, attempt):
    """``attempt(*options)`` -> (exit code, stderr, report); tried again with the zoo's options
    when the first try is a one-line exit 2 naming ``--shape`` or ``--value`` and an input
    those options set."""
    rc, err, report = attempt()
    if rc == 2:
        line = assert_bad_input((rc, "", err))
        assert "--shape" in line or "--value" in line, line
        named = [option.split("=")[0] for option in ZOO[name].options[1::2]]
        assert any(f"'{input_name}'" in line or f"{input_name}=" in line for input_name in named), \
            (line, named)
        rc, err, report = attempt(*ZOO[name].options)
    return rc, err, report


def _verdict(name, path, folder, capsys, *extra):
    """verify's report (its data, its path): a verdict, once an exit 2 is answered."""
    rc, err, report = _answered(name, lambda *options: _verify(path, folder, capsys,
                                                               *extra, *options))
    assert rc in (0, 1), err[-3000:]
    return json.loads(report.read_text()), report


@pytest.mark.parametrize("name", list(ZOO))
def test_default_verify_reaches_a_verdict_per_runtime(name, zoo_files, tmp_path, capsys):
    _complete(_verdict(name, zoo_files[name], tmp_path, capsys)[1], RUNTIMES)


def _bench(path, folder, capsys, *options):
    report = folder / f"bench{len(list(folder.glob('bench*.json')))}.json"
    rc, _, err = run_cli(capsys, "bench", path, "--runtimes", "ort-cpu,torch-cpu", *QUICK,
                         *options, "--json", report)
    return rc, err, report


@pytest.mark.parametrize("name", list(ZOO))
def test_bench_two_runtimes_measures_both(name, zoo_files, tmp_path, capsys):
    """Both runtimes can run every zoo model: both are measured, on what the LSTM sees."""
    rc, err, report = _answered(name, lambda *options: _bench(zoo_files[name], tmp_path, capsys,
                                                              *options))
    assert rc == 0, err[-3000:]
    data = json.loads(report.read_text())
    assert {row["runtime"] for row in data["results"]} == {"ort-cpu", "torch-cpu"}, \
        data["skipped"]


def test_frontend_seq_len_counts_the_frames_the_lstm_sees(zoo_files, tmp_path, capsys):
    """--seq-len 20: the audio fed is as long as 20 frames of window 64, hop 32 need."""
    rc, err, report = _verify(zoo_files["frontend"], tmp_path, capsys,
                              "--seq-len", "20", "--runtimes", "ort-cpu,numpy")
    assert rc == 0, err
    samples = json.loads(report.read_text())["inputs"]["shapes"]["audio"][1]
    assert 19 * 32 + 64 <= samples < 20 * 32 + 64, samples


def test_masked_keras_verifies_beyond_64_steps(zoo_files, tmp_path, capsys):
    """The done-when's T = 200, against the runtimes that honour sequence_lens."""
    rc, err, report = _verify(zoo_files["keras_masked"], tmp_path, capsys,
                              "--seq-len", str(KERAS_STEPS), "--runtimes", "ort-cpu,numpy")
    assert rc == 0, err
    assert {row["status"] for row in _complete(report, ["ort-cpu", "numpy"])["results"]} == {"pass"}


def test_a_runtime_crash_is_its_verdict_in_a_complete_report(zoo_files, tmp_path, capsys):
    """ort-cpu-fp16 segfaults on this model: its verdict says so, ort-cpu's stands, exit 1."""
    rc, err, report = _verify(zoo_files["linear_steps"], tmp_path, capsys,
                              "--runtimes", "ort-cpu,ort-cpu-fp16")
    assert rc == 1, err
    rows = {row["runtime"]: row
            for row in _complete(report, ["ort-cpu", "ort-cpu-fp16"])["results"]}
    assert rows["ort-cpu"]["status"] == "pass"
    assert "SIGSEGV" in json.dumps(rows["ort-cpu-fp16"]), rows["ort-cpu-fp16"]


def test_packed_state_vad_is_fed_what_the_chosen_branch_needs(zoo_files, tmp_path, capsys):
    """The sample rate picks the branch, and with it the front end the shape probe reads: 100
    frames are 100 hops of 32 samples at 16 kHz and of 16 at 8 kHz (windows 64 and 32)."""
    fed = {}
    for rate in (16000, 8000):
        rc, err, report = _verify(zoo_files["packed_state_vad"], tmp_path, capsys,
                                  "--runtimes", "ort-cpu", "--value", f"sr={rate}")
        assert rc == 0, err
        inputs = json.loads(report.read_text())["inputs"]
        assert inputs["values"] == {"sr": rate} and inputs["seq_len"] == 100
        fed[rate] = inputs["shapes"]["input"][1]
    assert 99 * 32 + 64 <= fed[16000] < 100 * 32 + 64, fed
    assert 99 * 16 + 32 <= fed[8000] < 100 * 16 + 32, fed
