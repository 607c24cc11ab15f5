"""The seed's classifier in torch, its built-in task and its checkpoints.

The seed example is Keras' ``Sequential([LSTM(50, input_shape=(100, 1)), Dense(1, "sigmoid")])``
trained with binary cross-entropy and Adam (``lstm-bench train``, ``lstm_bench.cli.train``).
Here it is ``nn.LSTM(1, 50, batch_first=True)`` over ``(batch, 100, 1)``, the last hidden state,
``Linear(50, 1)`` and a sigmoid.

The task needs long-range memory: the first ``MARKER_STEPS`` steps carry the label as a sign
(+1 or -1, plus noise), the remaining 90 steps are pure noise of the same size, and the model
decides only after the last step, so it must hold the sign across 90 noisy steps. The forget
gate's bias starts at 3 (f close to 0.95) so that the gradient from the decision reaches the
marker on the first updates; with torch's default 0, Adam makes no progress in the first
hundreds of steps (measured).

A checkpoint is two files: ``NAME.pt`` holds the state_dict (tensors only, read back with
``torch.load(weights_only=True)``) and ``NAME.json`` beside it holds the architecture, the format
marker, the seeds and the measured accuracy.

torch is imported where it is used, and the module class made on first use, so that reading
the sizes here (the run command's memory check) does not import torch.
"""

from __future__ import annotations

import functools
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import atomic_path, read_json, to_json

FORMAT = "lstm-bench/seed-lstm"
FORMAT_VERSION = 1
SEQ_LEN = 100
INPUT_SIZE = 1
HIDDEN_SIZE = 50
MARKER_STEPS = 10
NOISE = 1.0
FORGET_BIAS = 3.0
# Data seeds are derived from the training seed so that train, validation (early stopping)
# and held-out test sets never overlap.
VALIDATION_OFFSET, HELD_OUT_OFFSET = 1_000_001, 2_000_003
HELD_OUT_SIZE = 2048


@functools.cache
def _module_class():
    import torch
    from torch import nn

    class SeedLSTM(nn.Module):
        """LSTM(50) over (batch, time, 1), last hidden state, Dense(1), sigmoid: a probability."""

        def __init__(self, input_size: int = INPUT_SIZE, hidden_size: int = HIDDEN_SIZE):
            super().__init__()
            self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
            self.dense = nn.Linear(hidden_size, 1)

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(x)
            return self.dense(h[-1])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.logits(x))

    SeedLSTM.__module__, SeedLSTM.__qualname__ = __name__, "SeedLSTM"  # pickled by this name
    return SeedLSTM


def __getattr__(name: str):
    if name == "SeedLSTM":  # the torch module class, made on first use
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_dataset(n: int, seed: int, seq_len: int = SEQ_LEN) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences ``(n, seq_len, 1)`` float32 and their labels ``(n,)`` float32 (0 or 1).

    Every step is N(0, 1) noise; the first ``MARKER_STEPS`` steps also carry +1 for label 1 and
    -1 for label 0. The same ``(n, seed)`` always gives the same data (numpy's PCG64).
    """
    if n < 1 or seq_len <= MARKER_STEPS:
        raise LSTMBenchError(f"make_dataset needs n >= 1 and seq_len > {MARKER_STEPS}, "
                             f"got n={n}, seq_len={seq_len}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    X = rng.standard_normal((n, seq_len, 1)) * NOISE
    X[:, :MARKER_STEPS, 0] += (2.0 * labels - 1.0)[:, None]
    return X.astype(np.float32), labels.astype(np.float32)


def held_out(config: dict | None = None, n: int = HELD_OUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test set of a checkpoint (default: the shipped one's seed)."""
    seed = (config or {}).get("seed", 0)
    return make_dataset(n, seed + HELD_OUT_OFFSET)


def accuracy(model: SeedLSTM, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Fraction of sequences whose decision (probability > 0.5) equals the label."""
    import torch

    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            probs = model(torch.from_numpy(X[start:start + batch_size]))[:, 0].numpy()
            correct += int(np.sum((probs > 0.5) == (y[start:start + batch_size] > 0.5)))
    model.train(was_training)
    return correct / len(X)


def build_model(seed: int = 0) -> SeedLSTM:
    """A freshly initialised seed model (torch's init, forget-gate bias set to FORGET_BIAS)."""
    import torch

    torch.manual_seed(seed)
    model = _module_class()()
    H = HIDDEN_SIZE
    with torch.no_grad():
        # torch's gate order is i, f, g, o: rows H..2H of b_ih are the forget gate.
        model.lstm.bias_ih_l0[H:2 * H].fill_(FORGET_BIAS)
        model.lstm.bias_hh_l0[H:2 * H].zero_()
    return model


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(model: SeedLSTM, config: dict, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (.pt state_dict) and the .json config beside it, each atomically (a
    missing folder is made, as for every output the CLI writes)."""
    import torch

    path = Path(path)
    if path.suffix != ".pt":
        raise LSTMBenchError(f"{path}: a checkpoint path must end in .pt (its config goes to "
                             f"{path.with_suffix('.json').name})")
    json_path = _json_path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, make_folder=True) as pt_tmp, atomic_path(json_path) as json_tmp:
        torch.save(state, pt_tmp)
        json_tmp.write_text(to_json(config, indent=2))
    return path, json_path


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in _module_class()().state_dict().items()}


# The seed's state_dict is about 43 KB; a checkpoint whose members declare more than this is
# not one (a deflate bomb reaches gigabytes from a few MB) and is refused before torch reads it.
MAX_CHECKPOINT_BYTES = 16 * 2 ** 20
MAX_CHECKPOINT_SEQ_LEN = 100_000  # export traces one example of this length


def _check_config_types(config: dict, json_path: Path) -> None:
    """The sidecar's fields that lstm-bench uses have the types it uses them as."""
    arch = config.get("architecture")
    if not isinstance(arch, dict):
        raise LSTMBenchError(f"{json_path}: \"architecture\" must be an object, got "
                             f"{type(arch).__name__}")
    if (arch.get("input_size"), arch.get("hidden_size")) != (INPUT_SIZE, HIDDEN_SIZE):
        raise LSTMBenchError(f"{json_path}: architecture {arch} is not the seed's "
                             f"LSTM({INPUT_SIZE}, {HIDDEN_SIZE})")
    seq_len = arch.get("seq_len", SEQ_LEN)
    if (not isinstance(seq_len, int) or isinstance(seq_len, bool)
            or not 1 <= seq_len <= MAX_CHECKPOINT_SEQ_LEN):
        raise LSTMBenchError(f"{json_path}: architecture.seq_len must be an integer in "
                             f"1..{MAX_CHECKPOINT_SEQ_LEN}, got {seq_len!r}")
    seed = config.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise LSTMBenchError(f"{json_path}: \"seed\" must be an integer in 0..2**32-1, "
                             f"got {seed!r}")


def _check_pt_size(pt_path: Path) -> None:
    """Refuse a .pt whose (declared, uncompressed) size is far beyond the seed's state_dict."""
    try:
        if zipfile.is_zipfile(pt_path):
            with zipfile.ZipFile(pt_path) as archive:
                declared = sum(info.file_size for info in archive.infolist())
        else:
            declared = pt_path.stat().st_size
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise LSTMBenchError(f"{pt_path}: not a readable checkpoint ({first_line(exc)})") from None
    if declared > MAX_CHECKPOINT_BYTES:
        raise LSTMBenchError(f"{pt_path}: declares {declared} bytes of tensors, far more than the "
                             f"seed model's state_dict (at most {MAX_CHECKPOINT_BYTES} read)")


def load_checkpoint(path: str | Path) -> tuple[SeedLSTM, dict]:
    """Read a checkpoint written by ``save_checkpoint`` (the .pt or the .json path)."""
    import torch

    path = Path(path)
    pt_path = path.with_suffix(".pt") if path.suffix == ".json" else path
    json_path = _json_path(pt_path)
    for file in (pt_path, json_path):
        if not file.is_file():
            raise LSTMBenchError(f"{file}: no such file (a checkpoint is NAME.pt plus NAME.json, "
                                 "as written by `lstm-bench train`)")
    config = read_json(json_path, "checkpoint config")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise LSTMBenchError(f"{json_path}: not an lstm-bench checkpoint config (expected "
                             f"\"format\": \"{FORMAT}\")")
    if config.get("format_version") != FORMAT_VERSION:
        raise LSTMBenchError(f"{json_path}: checkpoint format_version "
                             f"{config.get('format_version')!r}, this lstm-bench reads "
                             f"{FORMAT_VERSION}")
    _check_config_types(config, json_path)
    _check_pt_size(pt_path)
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError, zipfile errors...
        raise LSTMBenchError(f"{pt_path}: not a loadable tensor-only state_dict "
                             f"({first_line(exc, with_type=True)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LSTMBenchError(f"{pt_path}: expected a state_dict (a dict of tensors), "
                             f"got {type(state).__name__}")
    expected = _expected_shapes()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise LSTMBenchError(f"{pt_path}: state_dict keys do not match the seed model: "
                             f"missing {missing}, unexpected {unexpected}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise LSTMBenchError(f"{pt_path}: {key} has shape {list(state[key].shape)}, "
                                 f"expected {list(shape)}")
        if not state[key].is_floating_point() or not torch.isfinite(state[key]).all():
            raise LSTMBenchError(f"{pt_path}: {key} must hold finite floating-point values")
    model = _module_class()()
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model, config


def shipped_checkpoint() -> Path:
    """Path of the trained checkpoint shipped in the package (lstm_bench/data/seed_lstm.pt)."""
    return Path(str(resources.files("lstm_bench") / "data" / "seed_lstm.pt"))


def load_seed_model(path: str | Path | None = None) -> tuple[SeedLSTM, dict]:
    """(model in eval mode, config) from ``path``, or from the shipped checkpoint."""
    return load_checkpoint(shipped_checkpoint() if path is None else path)
