"""The installed distribution imports under one root, ``lstm_bench``, and nothing else."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Bottom to top: each layer may import those before it, never one after it. The core is
# lstm_bench's own modules (model, spec, graph, files, errors, tolerances, feeds, seed); the
# app layer (lstm_bench.cli) sits on top and alone knows argparse.
LAYERS = [("core", [ROOT / "lstm_bench", ROOT / "lstm_bench" / "feeds"], "lstm_bench."),
          ("reference", [ROOT / "reference"], "lstm_bench.reference"),
          ("exporters", [ROOT / "exporters"], "lstm_bench.exporters"),
          ("runtimes", [ROOT / "runtimes"], "lstm_bench.runtimes"),
          ("verify", [ROOT / "lstm_bench" / "verify"], "lstm_bench.verify"),
          ("bench", [ROOT / "bench"], "lstm_bench.bench"),
          ("cli", [ROOT / "lstm_bench" / "cli"], "lstm_bench.cli")]


def installed_as(folder: Path) -> str:
    """Where a source folder's modules are in the wheel (the top-level folders install under
    lstm_bench/ through setuptools' package-dir)."""
    inside = folder.is_relative_to(ROOT / "lstm_bench")
    return folder.relative_to(ROOT).as_posix() if inside else f"lstm_bench/{folder.name}"


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
    for _, folders, _ in LAYERS:
        for folder in folders:
            package = installed_as(folder)
            assert f"{package}/__init__.py" in names
            for module in folder.glob("*.py"):
                assert f"{package}/{module.name}" in names
    assert not any(n.startswith(("lstm_bench/tools", "tools/")) for n in names)


def imported(module: Path) -> set[str]:
    """Every module name ``module`` imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_layers_point_one_way():
    """core <- reference <- exporters <- runtimes <- verify <- bench <- cli: no module
    imports a layer above it, and only the app layer uses argparse."""
    for rank, (layer, folders, _) in enumerate(LAYERS):
        above = tuple(name for _, _, name in LAYERS[rank + 1:])
        for module in (m for folder in folders for m in folder.glob("*.py")):
            names = imported(module)
            wrong = sorted(n for n in names if n.startswith(above))
            assert not wrong, f"{layer}: {module.name} imports {wrong}"
            if layer != "cli":
                assert "argparse" not in names, f"{layer}: {module.name} uses argparse"
