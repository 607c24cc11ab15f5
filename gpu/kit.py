#!/usr/bin/env python3
"""The GPU validation kit: ort-cuda and torch-cuda judged and timed on a real GPU, in one go.

Made for the lent device machine (one H100/H200, Python 3.12 with torch (CUDA build), onnx,
numpy and a CPU-only onnxruntime preinstalled, no network, at most 64 MiB carried per call,
files under /tmp kept while the machine stays warm). docs/gpu.md gives the exact sequence of
device calls. Stdlib only at import time: it runs on whatever Python the machine has.

Subcommands:
  fetch    (here, online) pip-download the wheels that must travel: onnxruntime-gpu and the
           report stack (scipy, matplotlib, rich) for the device's Python.
  pack     (here) unpack those wheels into one site-packages tree, xz it, and split the stream
           into parts under gpu/payload/ (gitignored), with a manifest of sha256 sums.
  receive  (device) check the parts carried in this call and move them to the stash (/tmp).
  run      (device) receive, reassemble and unpack the payload, put the project on the path
           (no pip, no network), then verify and bench; reports go to --out.
  run --cpu  the same pipeline on a machine without a GPU and without a payload, at small
           shapes: the CUDA runtimes are listed as skipped with their reason. Tests use it.

Nothing here decides pass or fail for the GPU: the reports say what each runtime did, and the
exit code is 0 once they are written (2 for a setup problem, with one line on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# gitignored: the parts and their manifest, made here, carried there (a test may move it)
PAYLOAD = Path(os.environ.get("LSTM_BENCH_GPU_PAYLOAD", REPO / "gpu" / "payload"))
STASH = Path(os.environ.get("LSTM_BENCH_GPU_STASH", "/tmp/lstm-bench-gpu"))
PART_MIB = 56  # each call carries the working tree too (under 1 MiB) within 64 MiB
CARRIED_PREFIX = "part-"

# What the payload carries, for Python 3.12 on x86-64 Linux. onnxruntime-gpu 1.31.1 is the
# newest on PyPI; its CUDA 13 / cuDNN 9 libraries come from the nvidia-* wheels that the
# device's torch (CUDA 13 build) already installed. The report stack is pinned as in
# pyproject.toml; numpy and protobuf are left out: the device's own are what its torch and onnx
# were built with.
WHEELS = ["onnxruntime-gpu==1.31.1", "scipy==1.17.1", "matplotlib==3.11.2", "rich==15.0.0"]
LEAVE_OUT = ("numpy-", "protobuf-")
PYTHON_TAG, PLATFORMS = "3.12", ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                 "manylinux_2_17_x86_64", "manylinux2014_x86_64")

RUNTIMES = "ort-cpu,ort-cuda,torch-cpu,torch-cuda"
# All cores on the device (16; lstm-bench's own default is 1). The dry run keeps one thread:
# torch's OpenMP pool on a busy 2-core machine can be 100x slower with two.
DEVICE_SHAPES = {"batches": (1, 32, 256), "seq_lens": (100, 1000),
                 "threads": (len(os.sched_getaffinity(0)),)}
CPU_SHAPES = {"batches": (1, 4), "seq_lens": (10,), "threads": (1,)}


class KitError(Exception):
    """A setup problem (missing part, bad checksum): one line on stderr, exit code 2."""


def log(message: str, logfile: Path | None = None) -> None:
    line = f"[kit {time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    if logfile is not None:
        with open(logfile, "a") as f:
            f.write(line + "\n")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- this side: fetch and pack ------------------------------------------------------------

def fetch(wheels_dir: Path, specs=WHEELS) -> list[Path]:
    """pip download the payload's wheels (with their dependencies) for the device's Python."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
               "--python-version", PYTHON_TAG, "-d", str(wheels_dir)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + list(specs), check=True)
    return sorted(wheels_dir.glob("*.whl"))


class PartWriter:
    """A write-only file that rolls over to a new part every ``part_bytes`` bytes."""

    def __init__(self, folder: Path, part_bytes: int):
        self.folder, self.part_bytes = folder, part_bytes
        self.parts: list[dict] = []
        self.file = None
        self.total = hashlib.sha256()

    def _roll(self):
        self._finish()
        name = f"{CARRIED_PREFIX}{len(self.parts):03d}"
        self.file = open(self.folder / name, "wb")
        self.parts.append({"name": name, "bytes": 0, "digest": hashlib.sha256()})

    def _finish(self):
        if self.file is not None:
            self.file.close()
            self.file = None

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            if self.file is None or self.parts[-1]["bytes"] >= self.part_bytes:
                self._roll()
            part = self.parts[-1]
            chunk = view[: self.part_bytes - part["bytes"]]
            self.file.write(chunk)
            part["bytes"] += len(chunk)
            part["digest"].update(chunk)
            self.total.update(chunk)
            view = view[len(chunk):]
        return len(data)

    def close(self) -> list[dict]:
        self._finish()
        return [{"name": p["name"], "bytes": p["bytes"], "sha256": p["digest"].hexdigest()}
                for p in self.parts]


def pack(wheels: list[Path], out: Path = PAYLOAD, part_mib: float = PART_MIB) -> dict:
    """Unpack ``wheels`` into one tree, stream it as tar.xz into parts; returns the manifest.

    xz shrinks the onnxruntime-gpu wheel from 255 MB (zip) to about 115 MB: two parts
    instead of five, so fewer device calls. Earlier parts in ``out`` are removed first.
    """
    import lzma
    import tempfile

    wheels = [w for w in wheels if not w.name.startswith(LEAVE_OUT)]
    if not wheels:
        raise KitError("no wheels to pack (run `kit.py fetch` first)")
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob(f"{CARRIED_PREFIX}*")) + [out / "manifest.json"]:
        old.unlink(missing_ok=True)
    writer = PartWriter(out, int(part_mib * 1024 * 1024))
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
        with lzma.LZMAFile(writer, "wb", preset=6) as xz, \
                tarfile.open(fileobj=xz, mode="w|") as tar:
            for path in sorted(site.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(site)), recursive=False)
    manifest = {"format": 1, "wheels": [w.name for w in wheels], "parts": writer.close(),
                "sha256": writer.total.hexdigest(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# --- the device side: receive, assemble -----------------------------------------------------

def load_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise KitError(f"{path}: no manifest; carry gpu/payload/manifest.json in every call "
                       "(made by `kit.py pack`)") from None
    except ValueError as exc:
        raise KitError(f"{path}: not a manifest ({exc})") from None


def receive(carried: Path = PAYLOAD, stash: Path = STASH) -> list[str]:
    """Move the parts carried in this call into the stash; returns the names still missing.

    A carried manifest that differs from the stashed one (a new pack) starts the stash over.
    """
    manifest = load_manifest(carried)
    parts_dir = stash / "parts"
    stashed = stash / "manifest.json"
    if not stashed.is_file() or json.loads(stashed.read_text())["sha256"] != manifest["sha256"]:
        shutil.rmtree(stash, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        shutil.copyfile(carried / "manifest.json", stashed)
    for part in manifest["parts"]:
        source = carried / part["name"]
        if source.is_file():
            if sha256(source) != part["sha256"]:
                raise KitError(f"{source}: sha256 differs from the manifest (a damaged copy)")
            shutil.copyfile(source, parts_dir / part["name"])
    missing = [p["name"] for p in manifest["parts"] if not (parts_dir / p["name"]).is_file()]
    log(f"payload: {len(manifest['parts']) - len(missing)}/{len(manifest['parts'])} parts in "
        f"{parts_dir}" + (f"; still missing: {', '.join(missing)}" if missing else "; complete"))
    return missing


class ChainReader:
    """The parts, read back to back as one stream (tarfile's streaming mode reads this)."""

    def __init__(self, paths):
        self.paths, self.file = list(paths), None

    def read(self, size=-1):
        chunks = []
        while size != 0:
            if self.file is None:
                if not self.paths:
                    break
                self.file = open(self.paths.pop(0), "rb")
            data = self.file.read(size if size > 0 else -1)
            if not data:
                self.file.close()
                self.file = None
                continue
            chunks.append(data)
            if size > 0:
                size -= len(data)
        return b"".join(chunks)


def assemble(stash: Path = STASH) -> Path:
    """Unpack the stashed parts into stash/site once (kept for later calls); returns it."""
    manifest = load_manifest(stash)
    site, done = stash / "site", stash / "site.complete"
    if done.is_file() and done.read_text() == manifest["sha256"]:
        return site
    parts = [stash / "parts" / p["name"] for p in manifest["parts"]]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise KitError(f"payload incomplete in {stash}: missing {', '.join(missing)}; carry "
                       "them with `kit.py receive` calls first (docs/gpu.md)")
    shutil.rmtree(site, ignore_errors=True)
    import lzma

    with lzma.LZMAFile(ChainReader(parts)) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
        tar.extractall(site, filter="data")
    done.write_text(manifest["sha256"])
    return site


def project_shim(stash: Path) -> Path:
    """The project importable as installed (lstm_bench.runtimes is the repo's runtimes/ ...),
    as setuptools' package-dir maps it, by symlinks: no pip, no build, no network."""
    import tomllib

    root = stash / "project"
    shutil.rmtree(root, ignore_errors=True)
    package = root / "lstm_bench"
    package.mkdir(parents=True)
    for item in (REPO / "lstm_bench").iterdir():
        if item.name != "__pycache__":
            (package / item.name).symlink_to(item)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    for name, folder in config["tool"]["setuptools"]["package-dir"].items():
        (package / name.split(".", 1)[1]).symlink_to(REPO / folder)
    project = config["project"]
    info = root / f"lstm_bench-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    return root


def nvidia_library_dirs() -> list[str]:
    """The lib folders of the nvidia-* wheels (CUDA runtime, cuBLAS, cuDNN ...) that torch
    brought: onnxruntime's CUDA provider loads the same libraries from there."""
    import site

    found = []
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        nvidia = Path(base) / "nvidia"
        if nvidia.is_dir():
            found += sorted(str(p) for p in nvidia.glob("**/lib") if p.is_dir())
    return found


# --- validate (a child process with the payload and the project on its path) --------------

def build_models(folder: Path, cpu: bool, logfile) -> dict:
    """name -> (model path, verify options). The seed model is the shipped checkpoint exported
    by torch (the TorchScript exporter: it needs no onnxscript); the others are written from
    seeded random weights by the project's own ONNX writer, which needs onnx alone."""
    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    size, large = ((8, 16), (8, 16)) if cpu else ((64, 128), (128, 256))
    batch, seq_len = (4, 20) if cpu else (32, 100)
    models = {}
    try:
        from lstm_bench.exporters.source import export_source
        from lstm_bench.seed import shipped_checkpoint

        seed = export_source(shipped_checkpoint(), folder / "seed.onnx", exporter="torchscript")
        log(f"seed model exported ({seed.exporter}), max abs error vs torch "
            f"{seed.max_abs_error:.2e}", logfile)
        models["seed"] = (seed.path, {"batch": batch, "seq_len": seq_len})
    except Exception as exc:  # the other cases still run; the summary names the cause
        log(f"seed model NOT exported: {type(exc).__name__}: {exc}", logfile)
    # clip + peepholes: onnxruntime's CUDA provider must hand this LSTM back to the CPU.
    fallback = LSTMSpec(*size, peepholes=True, clip=3.0)
    export_weights(LSTMWeights.random(fallback, seed=1), folder / "fallback.onnx",
                   sequence_lens=True)
    models["cuda_fallback"] = (folder / "fallback.onnx", {"batch": batch, "seq_len": seq_len})
    # A padded batch of different lengths (a historic GPU bug), one way and both ways.
    for name, direction in (("ragged", "forward"), ("ragged_bidirectional", "bidirectional")):
        spec = LSTMSpec(*size, direction=direction)
        export_weights(LSTMWeights.random(spec, seed=2), folder / f"{name}.onnx",
                       sequence_lens=True, initial_states=True)
        models[name] = (folder / f"{name}.onnx", {"batch": batch, "seq_len": seq_len,
                                                 "ragged": True, "zero_length": True})
    # A layer large enough for the GPU to matter, timed beside the seed.
    export_weights(LSTMWeights.random(LSTMSpec(*large), seed=3), folder / "large.onnx")
    models["large"] = (folder / "large.onnx", {"batch": batch, "seq_len": seq_len})
    return models


def environment() -> dict:
    import platform

    env = {"python": platform.python_version(), "executable": sys.executable}
    for name in ("lstm_bench", "numpy", "onnx", "onnxruntime", "torch", "scipy", "matplotlib",
                 "rich"):
        try:
            module = __import__(name)
            env[name] = {"version": getattr(module, "__version__", "?"),
                         "from": str(Path(module.__file__).parent)}
        except Exception as exc:  # record why, keep going: the report says what is missing
            env[name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        import onnxruntime

        env["onnxruntime"]["providers"] = onnxruntime.get_available_providers()
    except Exception:
        pass
    try:
        import torch

        env["torch"]["cuda"] = torch.version.cuda
        env["torch"]["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["torch"]["device"] = torch.cuda.get_device_name(0)
            env["torch"]["cudnn"] = torch.backends.cudnn.version()
            # TF32 rounds float32 matmul inputs to 10 mantissa bits: about 1e-3 errors
            env["torch"]["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
            env["torch"]["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True)
        env["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    return env


def validate(out: Path, cpu: bool, runtimes: str = RUNTIMES, budget_s: float = 420) -> dict:
    """Verify every model on every runtime, bench the seed and the large layer; write reports.

    Each phase stands alone: one that raises is recorded in the summary (``errors``) and the
    next runs; the summary is rewritten after every phase, so a run cut short by the call's
    time limit still returns what it measured. A bench starts only while less than
    ``budget_s`` has passed since the start.
    """
    import tempfile
    import traceback
    from dataclasses import asdict

    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, sweep_shapes
    from lstm_bench.bench.report import write_reports
    from lstm_bench.bench.runner import run_plan
    from lstm_bench.files import write_text
    from lstm_bench.model import Model
    from lstm_bench.runtimes.registry import make_factories
    from lstm_bench.verify.report import VerifySummary
    from lstm_bench.verify.run import VerifyPlan, verify

    logfile = out / "kit.log"
    started = time.perf_counter()
    summary = {"mode": "cpu (dry run)" if cpu else "device", "environment": environment(),
               "verify": {}, "bench": {}, "errors": {}, "phases_s": {}}
    log(f"environment: {json.dumps(summary['environment'])}", logfile)

    def done(phase):
        summary["phases_s"][phase] = round(time.perf_counter() - started, 1)
        write_text(out / "kit-summary.json", json.dumps(summary, indent=1, default=str) + "\n")

    def failed(phase, exc):
        lines = traceback.format_exception(exc)
        summary["errors"][phase] = "".join(lines[-6:])
        log(f"{phase} FAILED: {type(exc).__name__}: {exc}", logfile)

    names = runtimes.split(",")
    verify_docs = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), cpu, logfile)
        done("models")
        for case, (path, options) in models.items():
            if case == "large":
                continue
            try:
                report = verify(Model.load(path), VerifyPlan(make_factories(names), **options))
            except Exception as exc:
                failed(f"verify {case}", exc)
                continue
            verify_docs[case] = report.to_dict()
            summary["verify"][case] = {
                r.runtime: {"status": r.status, "reason": r.reason, "notes": r.notes,
                            "max_abs": max((o.max_abs for o in r.outputs
                                            if o.max_abs is not None), default=None)}
                for r in report.results}
            log(f"verify {case}: " + ", ".join(
                f"{n} {v['status']}" + (f" {v['max_abs']:.1e}" if v["max_abs"] is not None else "")
                for n, v in summary["verify"][case].items()), logfile)
            write_text(out / "verify.json", json.dumps(verify_docs, indent=1, default=str) + "\n")
        done("verify")
        shapes = CPU_SHAPES if cpu else DEVICE_SHAPES
        settings = (Settings(span=0, min_time=0.0, min_reps=3, warmup_reps=1, warmup_time=0.0,
                             block=1)
                    if cpu else Settings(min_time=0.1, max_time=2.0, warmup_time=0.02))
        for case in ("seed", "large"):
            if case not in models:
                continue
            if time.perf_counter() - started > budget_s:
                summary["errors"][f"bench {case}"] = f"not started: past the {budget_s:.0f} s budget"
                log(f"bench {case} not started: past the {budget_s:.0f} s budget", logfile)
                continue
            try:
                seed_verify = verify_docs.get("seed") if case == "seed" else None
                model = Model.load(models[case][0]).check_lstm()
                sweep, _ = sweep_shapes([model], shapes["batches"], shapes["seq_lens"])
                plan = SweepPlan((model,), RuntimeChoice.of(names), sweep,
                                 shapes["threads"], settings, calibrate=not cpu)
                (doc,) = run_plan(plan, VerifySummary.from_verify_json(seed_verify)
                                  if seed_verify else None)
                doc.extra["gpu_kit"] = {"mode": summary["mode"]}
                write_reports(doc, json=out / f"bench-{case}.json",
                              html=out / f"bench-{case}.html")
            except Exception as exc:
                failed(f"bench {case}", exc)
                continue
            summary["bench"][case] = {f"{m.runtime} b{m.batch} T{m.seq_len}": m.stats.median
                                      for m in doc.measurements}
            summary["bench"][case + "_skipped"] = [asdict(s) for s in doc.skipped]
            log(f"bench {case}: median ms " + json.dumps(summary["bench"][case]), logfile)
            done(f"bench_{case}")
    done("total")
    log(f"done in {time.perf_counter() - started:.0f} s; reports in {out}"
        + (f"; {len(summary['errors'])} phase(s) failed: {', '.join(summary['errors'])}"
           if summary["errors"] else ""), logfile)
    return summary


# --- the command line ------------------------------------------------------------------------

def run(out: Path, cpu: bool, stash: Path = STASH, carried: Path = PAYLOAD,
        budget_s: float = 420) -> int:
    """Everything the last device call does; in a child process so that the payload and the
    CUDA libraries are on its paths from the start."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if not cpu:
        if (carried / "manifest.json").is_file():
            receive(carried, stash)
        t0 = time.perf_counter()
        paths.append(str(assemble(stash)))
        log(f"payload unpacked in {time.perf_counter() - t0:.0f} s")
    stash.mkdir(parents=True, exist_ok=True)
    paths.insert(0, str(project_shim(stash)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if not cpu:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            nvidia_library_dirs() + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    env.setdefault("KERAS_BACKEND", "torch")
    command = [sys.executable, str(Path(__file__).resolve()), "validate", "--out", str(out),
               "--budget-s", str(budget_s)]
    return subprocess.run(command + (["--cpu"] if cpu else []), env=env).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpu/kit.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="pip download the payload's wheels (here, online)")
    p.add_argument("--wheels", type=Path, default=PAYLOAD / "wheels")
    p = sub.add_parser("pack", help="split the wheels into parts under gpu/payload/")
    p.add_argument("--wheels", type=Path, default=PAYLOAD / "wheels")
    p.add_argument("--part-mib", type=float, default=PART_MIB)
    sub.add_parser("receive", help="(device) stash the parts carried in this call")
    for name in ("run", "validate"):
        p = sub.add_parser(name, help="(device) reassemble, verify, bench, report"
                           if name == "run" else argparse.SUPPRESS)
        p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-results")))
        p.add_argument("--cpu", action="store_true", help="dry run on a machine without a GPU")
        p.add_argument("--budget-s", type=float, default=420,
                       help="start no bench after this many seconds (default 420)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            wheels = fetch(args.wheels)
            log(f"{len(wheels)} wheels in {args.wheels}")
        elif args.command == "pack":
            manifest = pack(sorted(args.wheels.glob("*.whl")), PAYLOAD, args.part_mib)
            log(f"{len(manifest['parts'])} parts in {PAYLOAD}: " + ", ".join(
                f"{p['name']} ({p['bytes'] / 2**20:.1f} MiB)" for p in manifest["parts"]))
        elif args.command == "receive":
            receive(PAYLOAD, STASH)
            if (PAYLOAD / f"{CARRIED_PREFIX}000").is_file():  # the first call: what is here
                log(f"environment: {json.dumps(environment())}")
        elif args.command == "run":
            return run(args.out, args.cpu, budget_s=args.budget_s)
        else:
            validate(args.out, args.cpu, budget_s=args.budget_s)
    except KitError as exc:
        print(f"gpu/kit.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
