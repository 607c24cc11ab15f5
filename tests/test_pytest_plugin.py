"""lstm-bench's pytest plugin (``lstm_bench.cli.pytest_plugin``): cheap to load, its fixtures
fail a test with the command line's lines, and a user project (examples/user_project) that
uses it passes on a good model and fails, as it should, on a bad one."""

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_bench.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
USER_PROJECT = ROOT / "examples" / "user_project"
HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "scipy", "rich", "openvino", "keras")



def _user_export():
    """The user project's export step (its export.py), as a module of its own name."""
    spec = importlib.util.spec_from_file_location("user_project_export",
                                                  USER_PROJECT / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _user_export().build


def test_the_plugin_is_registered_and_loads_nothing_heavy(request):
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11")
                if e.name == "lstm_bench"]
    assert entry.value == "lstm_bench.cli.pytest_plugin"
    assert request.config.pluginmanager.has_plugin("lstm_bench")  # this run loaded it too
    code = ("import sys, lstm_bench.cli.pytest_plugin; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert loaded.stdout.strip() == "[]"


def test_bad_input_fails_the_test_with_the_commands_line(lstm_verify, lstm_latency_gate,
                                                         tmp_path, tiny):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(pytest.fail.Exception) as failed:
        lstm_verify(missing)
    assert str(failed.value) == f"lstm-bench verify: error: {missing}: no such model file"
    with pytest.raises(pytest.fail.Exception, match=r"^lstm-bench verify: error: unknown "
                                                    r"no-such-runtime; known: ort-cpu, "):
        lstm_verify(tiny, runtimes="ort-cpu,no-such-runtime")
    with pytest.raises(pytest.fail.Exception, match=r"^lstm-bench compare: error: .*missing"
                                                    r"\.onnx: no such model file$"):
        lstm_latency_gate(tiny, baseline=missing)
    with pytest.raises(pytest.fail.Exception, match="^lstm-bench compare: error: expected a "
                                                    "percentage"):
        lstm_latency_gate(tiny, baseline=tiny, fail_above="lots")
    with pytest.raises(pytest.fail.Exception, match="^lstm-bench compare: error: the latency "
                                                    "gate measures model files, not a "
                                                    "ModelProto"):
        lstm_latency_gate(build(hidden=4), baseline=tiny)
    with pytest.raises(pytest.skip.Exception, match="no baseline model"):
        lstm_latency_gate(tiny)  # this run has no --lstm-bench-baseline


def test_verify_fails_with_the_lines_lstm_bench_verify_prints(lstm_verify, tmp_path, capsys):
    """A model with ``clip``, which onnx's ReferenceEvaluator ignores: the test fails with the
    very lines the command prints (a ModelProto in memory is taken as a file is)."""
    path = tmp_path / "clipped.onnx"
    proto = build(hidden=8, clip=0.1)
    path.write_bytes(proto.SerializeToString())
    report = lstm_verify(proto, runtimes=["numpy"], seq_len=16)
    assert [r.status for r in report.results] == ["pass"]
    with pytest.raises(pytest.fail.Exception) as failed:
        lstm_verify(path, runtimes="numpy,onnx-reference", seq_len=16)
    reason, *lines = str(failed.value).splitlines()  # CI's one line, then verify's lines
    assert "onnx-reference: Y: abs_error = " in reason and "numpy" not in reason
    assert lines[0].startswith("FAIL onnx-reference: Y: abs_error = ")
    assert lines[-1] == "1 of 2 runtime(s) failed"
    capsys.readouterr()
    assert cli_main(["verify", str(path), "--runtimes", "numpy,onnx-reference",
                     "--seq-len", "16"]) == 1
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    for line in lines:
        assert " ".join(line.split()) in printed


def run_user_project(tmp_path, model, baseline, *args, env=None) -> subprocess.CompletedProcess:
    """pytest on a copy of the user project, its model.onnx being ``model`` and its main
    branch's being ``baseline`` (ModelProtos), as its CI would run it."""
    project = tmp_path / "project"
    shutil.copytree(USER_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "model.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "base.onnx").write_bytes(baseline.SerializeToString())
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
         "--lstm-bench-runtimes", "ort-cpu,onnx-reference",
         "--lstm-bench-baseline", str(tmp_path / "base.onnx"),
         # a generous threshold for a shared machine: a regression here is many times slower
         "--lstm-bench-fail-above", "50", "--lstm-bench-span", "1", *args],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_a_user_project_passes_on_a_good_model(tmp_path):
    """The model of the pull request is the main branch's: both gates pass. Plugin autoload
    off: ``-p lstm_bench`` loads it by its name."""
    model = build(hidden=8)
    done = run_user_project(tmp_path, model, model, "-p", "lstm_bench",
                            env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_user_project_fails_as_it_should_on_a_bad_model(tmp_path):
    """A model 32 times wider than the main branch's, with ``clip`` set, which one runtime the
    team ships on (onnx's ReferenceEvaluator) ignores: verify fails on that runtime with
    verify's lines, the gate on the slowdown with compare's."""
    done = run_user_project(tmp_path, build(hidden=256, clip=0.1), build(hidden=8))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "2 failed" in out
    assert "\nFAIL onnx-reference: Y: abs_error = " in out
    assert "\n1 of 2 runtime(s) failed\n" in out
    assert "FAIL ort-cpu" not in out
    (gate,) = [line for line in out.splitlines()
               if line.startswith(f"lstm-bench compare {tmp_path / 'base.onnx'} ")]
    assert "regression" in gate and "ort-cpu batch 1, seq_len 16" in gate, gate
    assert "Traceback" not in out


def test_a_bad_option_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--lstm-bench-runtimes", "ort-cpu,nope", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 4  # pytest's usage error
    assert "--lstm-bench-runtimes: unknown nope; known: ort-cpu" in done.stderr
