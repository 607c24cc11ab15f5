"""The one description of an LSTM layer that every part of lstm-bench shares.

``LSTMSpec`` holds the sizes and the ONNX operator's attributes; it is frozen and hashable so
that it can key results in reports. ``LSTMWeights`` holds the tensors in ONNX layout
(W ``[D,4H,I]``, R ``[D,4H,H]``, B ``[D,8H]`` = ``[Wb | Rb]``, P ``[D,3H]``, gate order
i, o, f, c; peephole order i, o, f). Exporters map their framework into this type or out of it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import load_npz, parse_json

DIRECTIONS = ("forward", "reverse", "bidirectional")


def _is_int(value, bool_ok: bool = False) -> bool:
    return isinstance(value, (int, np.integer)) and (bool_ok or not isinstance(value, bool))


def _is_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def _is_text(value) -> bool:
    return isinstance(value, str)


@dataclass(frozen=True)
class LSTMSpec:
    """Sizes and attributes of one ONNX LSTM node."""

    input_size: int
    hidden_size: int
    direction: str = "forward"
    layout: int = 0
    bias: bool = True
    peepholes: bool = False
    clip: float | None = None
    input_forget: int = 0
    activations: tuple[str, ...] | None = None
    activation_alpha: tuple[float, ...] | None = None
    activation_beta: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise LSTMBenchError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.layout not in (0, 1):
            raise LSTMBenchError(f"layout must be 0 or 1, got {self.layout!r}")
        for name in ("input_size", "hidden_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise LSTMBenchError(f"{name} must be a positive integer, got {value!r}")
        # The fields can come from a user's file (an .npz's spec): check every type here.
        for name in ("bias", "peepholes"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise LSTMBenchError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.input_forget not in (0, 1) or not _is_int(self.input_forget, bool_ok=True):
            raise LSTMBenchError(f"input_forget must be 0 or 1, got {self.input_forget!r}")
        if self.clip is not None and not (_is_number(self.clip) and self.clip > 0):
            raise LSTMBenchError(f"clip must be a positive finite number, got {self.clip!r}")
        for name in ("activations", "activation_alpha", "activation_beta"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise LSTMBenchError(f"{name} must be a list, got {value!r}")
            ok = _is_text if name == "activations" else _is_number
            if not all(ok(v) for v in value):
                raise LSTMBenchError(f"{name} must be a list of "
                                     f"{'names' if name == 'activations' else 'finite numbers'}, "
                                     f"got {list(value)!r}")
            object.__setattr__(self, name, tuple(value))

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def attributes(self) -> dict:
        """The ONNX attributes of this layer, leaving out those at their defaults."""
        attrs = {"hidden_size": self.hidden_size}
        if self.direction != "forward":
            attrs["direction"] = self.direction
        if self.layout:
            attrs["layout"] = self.layout
        if self.clip is not None:
            attrs["clip"] = float(self.clip)
        if self.input_forget:
            attrs["input_forget"] = int(self.input_forget)
        for name in ("activations", "activation_alpha", "activation_beta"):
            if getattr(self, name) is not None:
                attrs[name] = list(getattr(self, name))
        return attrs

    def replace(self, **changes) -> LSTMSpec:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class LSTMWeights:
    """The tensors of one LSTM layer in ONNX layout, checked against their spec."""

    spec: LSTMSpec
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray | None = None
    P: np.ndarray | None = None
    name: str = field(default="lstm")

    def __post_init__(self):
        s, D, H, I = self.spec, self.spec.num_directions, self.spec.hidden_size, self.spec.input_size
        expected = {"W": (D, 4 * H, I), "R": (D, 4 * H, H)}
        if s.bias:
            expected["B"] = (D, 8 * H)
        elif self.B is not None:
            raise LSTMBenchError(f"{self.name}: B given but spec says bias=False")
        if s.peepholes:
            expected["P"] = (D, 3 * H)
        elif self.P is not None:
            raise LSTMBenchError(f"{self.name}: P given but spec says peepholes=False")
        for key, shape in expected.items():
            value = getattr(self, key)
            if value is None:
                raise LSTMBenchError(f"{self.name}: {key} is missing, expected shape {list(shape)}")
            value = np.asarray(value)
            if value.shape != shape:
                raise LSTMBenchError(
                    f"{self.name}: {key} has shape {list(value.shape)}, expected {list(shape)} "
                    f"(num_directions={D}, hidden_size={H}, input_size={I})"
                )
            if not np.issubdtype(value.dtype, np.floating):
                raise LSTMBenchError(f"{self.name}: {key} must be floating point, got {value.dtype}")
            if not np.all(np.isfinite(value)):
                raise LSTMBenchError(f"{self.name}: {key} holds non-finite values (NaN or inf)")
            object.__setattr__(self, key, value)

    @classmethod
    def random(cls, spec: LSTMSpec, seed: int = 0, scale: float | None = None,
               dtype=np.float32, name: str = "lstm") -> LSTMWeights:
        """Seeded uniform weights in +-1/sqrt(H), the range torch initialises nn.LSTM with."""
        rng = np.random.default_rng(seed)
        D, H, I = spec.num_directions, spec.hidden_size, spec.input_size
        k = scale if scale is not None else 1.0 / np.sqrt(H)

        def draw(*shape):
            return rng.uniform(-k, k, size=shape).astype(dtype)

        return cls(spec, draw(D, 4 * H, I), draw(D, 4 * H, H),
                   draw(D, 8 * H) if spec.bias else None,
                   draw(D, 3 * H) if spec.peepholes else None, name=name)

    def tensors(self) -> dict[str, np.ndarray]:
        """The ONNX inputs this layer carries as initializers, by their operator names."""
        out = {"W": self.W, "R": self.R}
        if self.B is not None:
            out["B"] = self.B
        if self.P is not None:
            out["P"] = self.P
        return out

    def astype(self, dtype) -> LSTMWeights:
        return LSTMWeights(self.spec, *(None if t is None else t.astype(dtype)
                                        for t in (self.W, self.R, self.B, self.P)), name=self.name)

    def save_npz(self, path: str | Path) -> None:
        """Raw weights plus the attributes; the format `lstm-bench export` reads back."""
        arrays = self.tensors()
        np.savez(path, spec=np.array(json.dumps(dataclasses.asdict(self.spec))), **arrays)

    @classmethod
    def load_npz(cls, path: str | Path) -> LSTMWeights:
        """Read an .npz of raw weights (never unpickles; sizes checked before reading)."""
        arrays = load_npz(path, "LSTM weights")
        for key in ("W", "R"):
            if key not in arrays:
                raise LSTMBenchError(f"{path}: array {key!r} is missing; an LSTM .npz holds W, R "
                                     "and optionally B, P and spec")
        W, R = arrays["W"], arrays["R"]
        if W.ndim != 3 or R.ndim != 3:
            raise LSTMBenchError(f"{path}: W must be [D,4H,I] and R [D,4H,H], got "
                                 f"{list(W.shape)} and {list(R.shape)}")
        if "spec" in arrays:
            fields = parse_json(str(arrays["spec"]), f"{path}: array 'spec'", "LSTM spec")
            if not isinstance(fields, dict):
                raise LSTMBenchError(f"{path}: array 'spec' must hold a JSON object of LSTM "
                                     f"attributes, got {type(fields).__name__}")
            try:
                spec = LSTMSpec(**fields)
            except TypeError as exc:
                raise LSTMBenchError(f"{path}: array 'spec' is not a valid LSTM spec "
                                     f"({exc})") from None
            except LSTMBenchError as exc:
                raise LSTMBenchError(f"{path}: array 'spec': {exc}") from None
        else:
            D, H = W.shape[0], R.shape[2]
            direction = {1: "forward", 2: "bidirectional"}.get(D)
            if direction is None:
                raise LSTMBenchError(f"{path}: W has {D} directions, expected 1 or 2")
            spec = LSTMSpec(W.shape[2], H, direction=direction, bias="B" in arrays,
                            peepholes="P" in arrays)
        return cls(spec, W, R, arrays.get("B"), arrays.get("P"), name=Path(path).stem)
