"""Where a command may write, checked before any work: an output is a regular file (never a
device, a FIFO, a socket, a link to a stream or to nowhere, nor an immutable file), and never
one of the files the command reads, nor inside another output (docs/safety.md, "What an output
may be"). ``lstm_bench.files.atomic_path`` asks the same ``target_problem`` as it writes.
``-`` is standard output where an option takes it (``check_writable(..., stdout=True)``), one
such option at a time (``check_one_stdout``)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from lstm_bench.errors import LSTMBenchError

STDOUT = "-"
NODE_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
              stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}
# Linux inode flags (chattr +i, +a) from linux/fs.h, read with the FS_IOC_GETFLAGS ioctl
FS_IOC_GETFLAGS, FS_IMMUTABLE_FL, FS_APPEND_FL = 0x80086601, 0x10, 0x20


def _link_chain(path: Path) -> list[Path]:
    """``path`` and every symlink target it leads to, each with its folder resolved."""
    chain, current = [], Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on nested links
        real = Path(os.path.realpath(current.parent)) / current.name
        chain.append(real)
        if not real.is_symlink():
            break
        current = real.parent / os.readlink(real)
    return chain


def _inode_flags(path: Path) -> int:
    """The chattr flags of ``path``; 0 where they cannot be read (not Linux, no permission)."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
        finally:
            os.close(fd)
    except (ImportError, OSError):
        return 0


def target_problem(path: str | Path) -> str | None:
    """Why the file at ``path`` could not be replaced by a report written atomically, or None.

    Outputs are regular files: a device (``/dev/null`` as root), a FIFO or a socket would be
    replaced by a regular file, and a link to a stream of this process (``/dev/stdout``,
    ``/proc/self/fd/1``) by a regular file in its place; a dangling symlink would have SQLite
    create its target wherever it points. An immutable file, or any file in an append-only
    folder, cannot be renamed over: found now rather than after the work.
    """
    path = Path(path)
    chain = _link_chain(path)
    stream = next((p for p in chain if p.parts[1:2] == ("proc",)), None)
    if stream is not None:
        return (f"a link to {stream}, an open stream of this process, not a file path "
                "(outputs are written to files)")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return (f"a symbolic link to {chain[-1]}, which does not exist (no file is created "
                    "through a link)")
        mode = None
    except OSError as exc:  # a loop of links, a file where a folder should be
        return exc.strerror or str(exc)
    if mode is not None and stat.S_IFMT(mode) in NODE_KINDS:
        return (f"a {NODE_KINDS[stat.S_IFMT(mode)]}, not a regular file (outputs are written "
                "to regular files only)")
    # a link is replaced itself, its target left alone: only a file's own flags matter
    replaced = mode is not None and stat.S_ISREG(mode) and not path.is_symlink()
    flags = _inode_flags(path) if replaced else 0
    if flags & (FS_IMMUTABLE_FL | FS_APPEND_FL):
        which = "immutable (chattr +i)" if flags & FS_IMMUTABLE_FL else "append-only (chattr +a)"
        return f"the file is {which}: it cannot be replaced"
    if path.parent.is_dir() and _inode_flags(path.parent) & FS_APPEND_FL:
        return (f"the folder {path.parent} is append-only (chattr +a): a file in it cannot be "
                "replaced")
    return None


def check_target(path: str | Path | None, option: str) -> None:
    """``target_problem`` as the command's one-line error (for the history database, which
    SQLite writes in place)."""
    problem = None if path is None else target_problem(path)
    if problem:
        raise LSTMBenchError(f"{option} {path}: {problem}")


def is_stdout(path) -> bool:
    """``-``: the command's standard output, where an option takes it (``./-`` names a file)."""
    return path is not None and os.fspath(path) == STDOUT


def check_writable(path: str | Path | None, option: str, *, stdout: bool = False) -> None:
    """Fail before any work when a report path can never be written (checked up front so a
    long benchmark does not end in a write error). ``stdout``: the option takes ``-`` for
    standard output."""
    if path is None or (stdout and is_stdout(path)):
        return
    if is_stdout(path):  # a file named "-" would surprise whoever meant standard output
        raise LSTMBenchError(f"{option} -: standard output is not an output here; give a file "
                             "path (./- for a file named -)")
    check_target(path, option)
    path = Path(path)
    if path.is_dir():
        raise LSTMBenchError(f"{option} {path}: is a directory, expected a file path")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise LSTMBenchError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LSTMBenchError(f"{option} {path}: the folder {parent} is not writable")


def check_one_stdout(outputs: dict) -> str | None:
    """The option of ``outputs`` (option -> path) that writes to standard output (``-``), or
    None; two are refused: their documents would run together."""
    dashes = [option for option, path in outputs.items() if is_stdout(path)]
    if len(dashes) > 1:
        raise LSTMBenchError(f"{' and '.join(f'{o} -' for o in dashes)}: only one output may "
                             "be standard output (-); give the others file paths")
    return dashes[0] if dashes else None


def sqlite_files(label: str, path: str | Path | None) -> dict:
    """A SQLite database and the files SQLite keeps beside it, as inputs of ``check_distinct``."""
    if path is None:
        return {}
    return {label: Path(path), **{f"{label}'s {what}": Path(f"{path}{suffix}") for what, suffix
                                  in (("journal", "-journal"), ("WAL", "-wal"),
                                      ("shared memory", "-shm"))}}


def onnx_data_files(path: Path) -> list[Path]:
    """The external data files an ONNX model names, read without its data; none for a file
    that is not a readable model (reading it as the model says why, before any work)."""
    if not path.is_file():  # never open a FIFO here: it would block
        return []
    import onnx
    from onnx.external_data_helper import _get_all_tensors  # what onnx.load reads

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises many types for a bad file
        return []
    names = {entry.value for tensor in _get_all_tensors(proto)
             if tensor.data_location == onnx.TensorProto.EXTERNAL
             for entry in tensor.external_data if entry.key == "location"}
    return [path.parent / name for name in sorted(names)]


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(inner: Path, outer: Path) -> bool:
    """``inner`` would lie in a folder ``outer`` that is to be a file (not a folder now)."""
    if outer.is_dir():
        return False
    return outer.resolve() in inner.resolve().parents


def check_distinct(inputs: dict, outputs: dict, models: tuple = ()) -> None:
    """No output path may be an input path or another output, or lie inside one:
    ``{"--json": path, ...}`` (None values are left out). ``models``: the labels in ``inputs``
    of ONNX models, whose external data files are inputs too (read only when an output exists
    in a model's folder: only there could it be one). Checked before any work, so a mistake
    costs nothing."""
    inputs = {k: Path(v) for k, v in inputs.items() if v is not None}
    outputs = {k: Path(v) for k, v in outputs.items() if v is not None and not is_stdout(v)}
    for label in (m for m in models if m in inputs):
        folder = inputs[label].resolve().parent
        if any(p.exists() and folder in p.resolve().parents for p in outputs.values()):
            inputs.update((f"{label}'s external data {data.name}", data)
                          for data in onnx_data_files(inputs[label]))
    seen: dict[str, Path] = {}
    for option, path in outputs.items():
        for label, source in inputs.items():
            if _same(path, source):
                raise LSTMBenchError(f"{option} {path}: the output would overwrite the input "
                                     f"{label} {source}; choose another path")
        for other, earlier in seen.items():
            if _same(path, earlier):
                raise LSTMBenchError(f"{option} {path}: the same file as {other}; each report "
                                     "needs its own path")
        seen[option] = path
    for option, path in outputs.items():  # a file where another needs a folder
        for other, elsewhere in {**inputs, **outputs}.items():
            for inner, outer in (((option, path), (other, elsewhere)),
                                 ((other, elsewhere), (option, path))):
                if other != option and _inside(inner[1], outer[1]):
                    raise LSTMBenchError(f"{inner[0]} {inner[1]}: inside {outer[0]} {outer[1]}, "
                                         "a file of this command; choose another path")
