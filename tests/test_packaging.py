"""The installed distribution imports under one root, ``lstm_bench``, and nothing else."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_one_top_level_package(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("lstm_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"lstm_bench"}
    for folder in ("reference", "exporters", "runtimes", "bench"):
        assert f"lstm_bench/{folder}/__init__.py" in names
        for module in (ROOT / folder).glob("*.py"):
            assert f"lstm_bench/{folder}/{module.name}" in names


def test_layers_point_one_way():
    """core <- reference <- exporters <- runtimes <- bench: no module imports a layer above it."""
    order = ["reference", "exporters", "runtimes", "bench"]
    for rank, folder in enumerate(order):
        above = order[rank + 1:]
        for module in (ROOT / folder).glob("*.py"):
            text = module.read_text()
            for upper in above:
                assert f"lstm_bench.{upper}" not in text, f"{folder}/{module.name} imports {upper}"
    for module in (ROOT / "lstm_bench").glob("*.py"):
        if module.name in ("cli.py",):  # the command table names every layer's CLI module
            continue
        text = module.read_text()
        for upper in order:
            assert f"lstm_bench.{upper}" not in text, f"lstm_bench/{module.name} imports {upper}"
