"""Issue 19, item 2: a runtime's native crash is that runtime's verdict, and the report is whole.

onnxruntime 1.32 segfaults creating the session of the float16 copy of a plain TorchScript
export (a Linear over every step of a 2-layer bidirectional LSTM, ``zoo.ZOO["linear_steps"]``):
`verify` and `bench` exited 139 with no table and no JSON. Runtimes that load native code now
run in a child process (``lstm_bench.verify.isolate``; bench tries each in one before it times,
``bench.trial``). The crashes of ``crashing_runtime`` are deterministic, whatever onnxruntime
does; the float16 one is the crash users met.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crashing_runtime import AbortOnOpen, HangOnRun, KilledOnRun, SegfaultOnLayer, SegfaultOnRun
from hostile import QUICK, assert_bad_input
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.runner import run_plan
from lstm_bench.model import Model
from lstm_bench.runtimes.numpy_rt import NumpyRuntime
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.verify.run import VerifyPlan, verify
from lstm_bench.verify.verdict import ERROR, FAIL, PASS

FP16_CRASH = "crashed: SIGSEGV while opening"


@pytest.fixture(scope="module")
def linear_steps(tmp_path_factory):
    """The TorchScript export whose float16 copy onnxruntime 1.32 segfaults on."""
    from zoo import ZOO

    return ZOO["linear_steps"].build(tmp_path_factory.mktemp("linear_steps"))


def _cli(*argv, env=None, timeout=180):
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


# --- the crash users met: onnxruntime's float16 session ---------------------------------------

def test_verify_reports_the_float16_segfault_and_every_other_runtime(linear_steps, tmp_path):
    """Exit 139 and nothing written before; now exit 1 (a failing runtime), the whole table and
    JSON, the crash as ort-cpu-fp16's error."""
    out = tmp_path / "verify.json"
    rc, stdout, stderr = _cli("verify", linear_steps, "--runtimes", "ort-cpu,ort-cpu-fp16,numpy",
                              "--no-lstm-layer", "--json", out)
    assert rc == 1, (rc, stderr[-2000:])
    results = {r["runtime"]: r for r in json.loads(out.read_text())["results"]}
    assert list(results) == ["ort-cpu", "ort-cpu-fp16", "numpy"]
    assert (results["ort-cpu-fp16"]["status"], results["ort-cpu-fp16"]["reason"]) == \
        (ERROR, FP16_CRASH)
    assert results["ort-cpu"]["status"] == results["numpy"]["status"] == PASS
    assert f"FAIL ort-cpu-fp16: *: error = {FP16_CRASH}" in stdout
    assert "1 of 3 runtime(s) failed" in stdout


def test_bench_leaves_the_crashed_runtime_out_and_writes_its_report(linear_steps, tmp_path):
    """Exit 139 before; now exit 0 (a runtime that cannot run is no failure of bench's), the
    others timed, the crash in the report's skips and the decision's exclusions."""
    out = tmp_path / "bench.json"
    rc, stdout, stderr = _cli("bench", linear_steps, "--runtimes", "ort-cpu,ort-cpu-fp16",
                              *QUICK, "--json", out)
    assert rc == 0, (rc, stderr[-2000:])
    report = json.loads(out.read_text())
    assert {r["runtime"] for r in report["results"]} == {"ort-cpu"}
    assert report["skipped"] == [{"runtime": "ort-cpu-fp16", "threads": None,
                                  "reason": FP16_CRASH}]
    assert f"excluded ort-cpu-fp16: not measured: {FP16_CRASH}" in " ".join(stdout.split())


def test_run_writes_every_report_and_exits_1(linear_steps, tmp_path):
    """`run` = verify (the crash is ort-cpu-fp16's error) + bench (left out): every report."""
    rc, stdout, stderr = _cli("run", "--model", linear_steps, "--runtimes", "ort-cpu,ort-cpu-fp16",
                              "--batch", "1", "--span", "0", "--min-time", "0", "--no-history",
                              "--quiet", "--out", tmp_path / "out")
    assert rc == 1, (rc, stderr[-2000:])
    (folder,) = (tmp_path / "out").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == \
        ["bench.html", "bench.json", "bench.md", "verify.json"]
    verify_json = json.loads((folder / "verify.json").read_text())
    verdicts = {r["runtime"]: r for r in verify_json["results"]}
    assert verdicts["ort-cpu-fp16"]["reason"] == FP16_CRASH
    assert "verification failed on ort-cpu-fp16" in " ".join(stdout.split())


# --- deterministic crashes, through the Python API --------------------------------------------

def test_each_crash_is_its_runtimes_verdict_and_the_child_starts_again(tiny):
    """A segfault while running, an abort while opening, the out-of-memory killer's SIGKILL:
    each its runtime's error with the signal and the step; the runtimes after them run in a
    fresh child and pass."""
    plan = VerifyPlan({"segv": SegfaultOnRun, "abort": AbortOnOpen, "kill": KilledOnRun,
                       "ort-cpu": OrtRuntime, "numpy": NumpyRuntime}, streaming=False)
    report = verify(Model.load(tiny), plan)
    verdicts = {r.runtime: r for r in report.results}
    assert (verdicts["segfault-on-run"].status, verdicts["segfault-on-run"].reason) == \
        (ERROR, "crashed: SIGSEGV while running")
    assert (verdicts["abort-on-open"].status, verdicts["abort-on-open"].reason) == \
        (ERROR, "crashed: SIGABRT while opening")
    assert (verdicts["killed-on-run"].status, verdicts["killed-on-run"].reason) == \
        (ERROR, "crashed: SIGKILL (out of memory?) while running")
    assert verdicts["ort-cpu"].status == verdicts["numpy"].status == PASS


def test_a_crash_on_the_lstm_layer_alone_keeps_the_models_own_verdict(linear_steps):
    """The model's outputs judged (within tolerance), then the crash on its LSTM layer alone:
    a failure of that runtime that names the layer, its own figures kept."""
    report = verify(Model.load(linear_steps),
                    VerifyPlan({"layer": SegfaultOnLayer}, streaming=False))
    (verdict,) = report.results
    assert verdict.status == FAIL and verdict.model_ok
    assert verdict.lstm_layer.status == ERROR
    assert verdict.lstm_layer.reason == "crashed: SIGSEGV while opening /lstm/LSTM alone"


def test_a_runtime_that_hangs_is_stopped_by_the_call_time_limit(tiny, monkeypatch):
    """No answer within LSTM_BENCH_CALL_TIMEOUT_S: the child is ended, the runtime's error
    names the step and the limit, and the next runtime runs."""
    monkeypatch.setenv("LSTM_BENCH_CALL_TIMEOUT_S", "1")
    report = verify(Model.load(tiny), VerifyPlan({"hang": HangOnRun, "ort-cpu": OrtRuntime},
                                                 streaming=False))
    hang, ort = report.results
    assert (hang.status, hang.reason) == \
        (ERROR, "stopped: running took longer than 1 s (LSTM_BENCH_CALL_TIMEOUT_S)")
    assert ort.status == PASS


def test_bench_times_the_others_in_its_worker_processes(tiny, monkeypatch):
    """The crashed runtime is out of the timing in the workers too (they make the plan's
    runtimes by name: the crashed one is no longer among them)."""
    monkeypatch.setitem(RUNTIMES, SegfaultOnRun.name, SegfaultOnRun)
    from cases import bench_plan

    plan = bench_plan(tiny, [SegfaultOnRun.name, "ort-cpu"], lengths=[5],
                      settings=Settings(span=0, blocks=1, min_time=0, min_reps=2, max_reps=2,
                                        processes=2), calibrate=False)
    (report,) = run_plan(plan)
    assert {m.runtime for m in report.measurements} == {"ort-cpu"}
    assert [(s.runtime, s.reason) for s in report.skipped] == \
        [(SegfaultOnRun.name, "crashed: SIGSEGV while running at batch 1, seq_len 5")]


def test_a_crash_while_timed_in_a_worker_is_that_runtimes_verdict(tiny, monkeypatch):
    """A runtime that passes its trial and crashes in a worker's timed calls is named (the
    worker says which runtime it is calling), left out, and the process measured again
    without it: the others' rows and the report are still made."""
    from crashing_runtime import SegfaultWhileTimed, worker_knowing_these

    from cases import bench_plan
    from lstm_bench.bench.runner import measure_in_processes

    monkeypatch.setitem(RUNTIMES, SegfaultWhileTimed.name, SegfaultWhileTimed)
    plan = bench_plan(tiny, [SegfaultWhileTimed.name, "numpy"], lengths=[5],
                      settings=Settings(span=0, blocks=2, min_time=0, min_reps=4, max_reps=4,
                                        processes=2, call_floor=False), calibrate=False)
    (result,) = measure_in_processes(plan, worker=worker_knowing_these)
    assert {m.runtime for m in result.measurements} == {"numpy"}
    assert {(m.batch, m.seq_len) for m in result.measurements} == {(1, 5)}
    assert [(s["runtime"], s["reason"]) for s in result.skipped] == [(
        SegfaultWhileTimed.name, "crashed: SIGSEGV while being timed (worker process 0)")]


SCRIPT = """
import sys
from lstm_bench.model import Model
from lstm_bench.runtimes.numpy_rt import NumpyRuntime
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.verify.run import VerifyPlan, verify

class Mine(NumpyRuntime):  # defined here: the child cannot import it, so it runs here
    name = "mine"
    native_code = True

report = verify(Model.load(sys.argv[1]), VerifyPlan({"ort-cpu": OrtRuntime, "mine": Mine}))
print([(r.runtime, r.status) for r in report.results])
"""


def test_a_script_without_a_main_guard_can_call_verify(tiny, tmp_path):
    """The child imports lstm-bench alone, never the script that calls verify (multiprocessing's
    spawn would, and a script without ``if __name__ == "__main__"`` would run again in it)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, script, tiny], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[('ort-cpu', 'pass'), ('mine', 'pass')]"


# --- signals still stop everything -----------------------------------------------------------

HANGING = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from crashing_runtime import HangOnRun
from lstm_bench.runtimes.registry import RUNTIMES
RUNTIMES[HangOnRun.name] = HangOnRun
"""


def _runtime_children(pid: int) -> list[int]:
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            stat = (process / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid and stat[0] != "Z" and \
                    b"lstm_bench.verify.isolate" in (process / "cmdline").read_bytes():
                found.append(int(process.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_whole_group_stops_verify_and_its_child(tiny, tmp_path, signum, code):
    """Ctrl-C reaches every process of the terminal's group, SIGTERM (here too) each one: the
    parent exits 130 / 143 at once, and no child is left running."""
    script = HANGING + "from lstm_bench.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", script, "verify", tiny, "--runtimes",
                             HangOnRun.name, "--no-streaming"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    children = []
    try:
        deadline = time.monotonic() + 60
        while not children:
            assert proc.poll() is None and time.monotonic() < deadline, \
                proc.communicate()[1][-2000:]
            time.sleep(0.05)
            children = _runtime_children(proc.pid)
        time.sleep(1.0)  # the child is in HangOnRun.run
        os.killpg(proc.pid, signum)
        assert proc.wait(timeout=20) == code, proc.stderr.read()[-2000:]
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in children) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        proc.wait()


def test_a_runaway_in_benchs_trial_is_the_call_time_limits_one_line(tiny):
    """A runtime that hangs in bench's trial: exit 2 with the timing's own words."""
    script = HANGING + "from lstm_bench.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.run([sys.executable, "-c", script, "bench", tiny, "--runtimes",
                           HangOnRun.name, *QUICK], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LSTM_BENCH_CALL_TIMEOUT_S": "1"})
    assert_bad_input((proc.returncode, proc.stdout, proc.stderr),
                     f"{HangOnRun.name}: opening the model and its first runs took longer "
                     "than 1 s", "LSTM_BENCH_CALL_TIMEOUT_S")
