"""The command line's frame: help without heavy imports, one-line errors, exit codes."""

import subprocess
import sys

import pytest

from lstm_bench.cli import COMMANDS, main

HEAVY = ("torch", "onnxruntime", "keras", "onnx", "h5py", "matplotlib")


def test_help_lists_every_command_without_heavy_imports():
    code = ("import sys\nfrom lstm_bench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    rc = e.code\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\nsys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in ("train", "export", "verify", "bench", "compare", "run"):
        assert name in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_every_command_module_has_the_contract():
    import importlib

    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments), name
        assert callable(module.main), name


@pytest.mark.parametrize("argv", [["nonsense"], ["verify", "--no-such-flag"]])
def test_usage_errors_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "error:" in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("lstm-bench ")


@pytest.mark.parametrize("argv", [["verify", "{model}", "--json", "{tmp}"],
                                  ["bench", "{model}", "--html", "{tmp}/file.txt/r.html"]])
def test_unwritable_report_paths_fail_before_any_work(argv, tiny, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    argv = [a.format(model=tiny, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert len(captured.err.strip().splitlines()) == 1 and "error:" in captured.err
