"""The GPU validation kit (gpu/kit.py) on a machine without a GPU: the payload's split and
reassembly with a real wheel, and the whole pipeline in its --cpu dry run (the CUDA runtimes
skip with their reason; everything else runs for real)."""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "gpu" / "kit.py"


@pytest.fixture(scope="module")
def kit():
    spec = importlib.util.spec_from_file_location("gpu_kit", KIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(folder: Path, value: int) -> Path:
    """A real (tiny) wheel: a package, its dist-info, and 20 KB that xz cannot shrink."""
    path = folder / "kitprobe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("kitprobe/__init__.py", f"VALUE = {value}\n")
        wheel.writestr("kitprobe/noise.bin", os.urandom(20_000))
        wheel.writestr("kitprobe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: kitprobe\n"
                       "Version: 1.0\n")
        wheel.writestr("kitprobe-1.0.dist-info/RECORD", "")
    return path


def test_parts_travel_one_per_call_and_reassemble(kit, tmp_path):
    wheel = make_wheel(tmp_path, 42)
    packed = tmp_path / "payload"
    manifest = kit.pack([wheel], packed, part_mib=8 / 1024)  # 8 KiB parts
    parts = manifest["parts"]
    assert len(parts) >= 3 and all(p["bytes"] <= 8 * 1024 for p in parts)
    stash = tmp_path / "stash"
    for index, part in enumerate(parts):  # one call each: only the manifest and that part
        carried = tmp_path / f"call{index}"
        carried.mkdir()
        for name in ("manifest.json", part["name"]):
            (carried / name).write_bytes((packed / name).read_bytes())
        missing = kit.receive(carried, stash)
        assert missing == [p["name"] for p in parts[index + 1:]]
    site = kit.assemble(stash)
    out = subprocess.run([sys.executable, "-c", "import kitprobe; print(kitprobe.VALUE)"],
                         env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "42"
    assert (site / "kitprobe-1.0.dist-info" / "METADATA").is_file()


def test_incomplete_or_damaged_payload_is_a_setup_error(kit, tmp_path):
    packed = tmp_path / "payload"
    manifest = kit.pack([make_wheel(tmp_path, 1)], packed, part_mib=8 / 1024)
    stash = tmp_path / "stash"
    kit.receive(packed, stash)
    (stash / "parts" / manifest["parts"][-1]["name"]).unlink()
    with pytest.raises(kit.KitError, match=f"missing {manifest['parts'][-1]['name']}"):
        kit.assemble(stash)
    damaged = packed / manifest["parts"][0]["name"]
    damaged.write_bytes(b"x" + damaged.read_bytes()[1:])
    with pytest.raises(kit.KitError, match="sha256 differs"):
        kit.receive(packed, stash)


def test_a_new_pack_starts_the_stash_over(kit, tmp_path):
    stash = tmp_path / "stash"
    first = tmp_path / "first"
    kit.pack([make_wheel(tmp_path, 1)], first, part_mib=8 / 1024)
    kit.receive(first, stash)
    second = tmp_path / "second"
    manifest = kit.pack([make_wheel(tmp_path, 2)], second, part_mib=8 / 1024)
    (tmp_path / "only_manifest").mkdir()
    (tmp_path / "only_manifest" / "manifest.json").write_bytes(
        (second / "manifest.json").read_bytes())
    missing = kit.receive(tmp_path / "only_manifest", stash)
    assert missing == [p["name"] for p in manifest["parts"]]


def test_run_without_a_payload_says_what_to_carry(tmp_path):
    env = {**os.environ, "LSTM_BENCH_GPU_STASH": str(tmp_path / "empty"),
           "LSTM_BENCH_GPU_PAYLOAD": str(tmp_path / "nothing_carried")}
    out = subprocess.run([sys.executable, str(KIT), "run", "--out", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "manifest" in lines[0], out.stderr


def test_cpu_dry_run_writes_every_report(tmp_path):
    stash = tmp_path / "stash"
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(KIT), "run", "--cpu", "--out", str(out)],
                            env={**os.environ, "LSTM_BENCH_GPU_STASH": str(stash)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"kit.log", "kit-summary.json", "verify.json",
                                               "bench-seed.json", "bench-seed.html",
                                               "bench-large.json", "bench-large.html"}
    assert len(list(out.iterdir())) <= 8  # the device returns at most 8 files
    summary = json.loads((out / "kit-summary.json").read_text())
    # the project came from the kit's symlinked copy, not from an installed package
    assert summary["environment"]["lstm_bench"]["from"].startswith(str(stash / "project"))
    assert set(summary["verify"]) == {"seed", "cuda_fallback", "ragged", "ragged_bidirectional"}
    for case, rows in summary["verify"].items():
        assert rows["ort-cpu"]["status"] == "pass" and rows["torch-cpu"]["status"] == "pass", case
        for gpu in ("ort-cuda", "torch-cuda"):
            assert rows[gpu]["status"] == "skip" and "CUDA" in rows[gpu]["reason"], rows[gpu]
    bench = json.loads((out / "bench-seed.json").read_text())
    assert {(r["runtime"], r["batch"]) for r in bench["results"]} == {
        (name, batch) for name in ("ort-cpu", "torch-cpu") for batch in (1, 4)}
    assert {s["runtime"] for s in bench["skipped"]} == {"ort-cuda", "torch-cuda"}
    assert bench["verify"]["runtimes"]["ort-cpu"]["status"] == "pass"
    assert (out / "bench-seed.html").read_text().startswith("<!DOCTYPE html>")


def test_past_the_budget_no_bench_starts_and_the_summary_says_so(kit, tmp_path):
    summary = kit.validate(tmp_path, cpu=True, budget_s=0)
    assert summary["verify"]["ragged"]["ort-cpu"]["status"] == "pass"
    assert summary["bench"] == {}
    assert set(summary["errors"]) == {"bench seed", "bench large"}
    assert "budget" in summary["errors"]["bench seed"]
    written = json.loads((tmp_path / "kit-summary.json").read_text())
    assert written["errors"] == summary["errors"] and "total" in written["phases_s"]
    assert not (tmp_path / "bench-seed.json").exists()
