"""onnxruntime session options from the command line: ``--ort-option KEY=VALUE`` (repeatable).

Applied to every onnxruntime-based runtime (ort-cpu, ort-cuda, ort-cpu-int8, ort-cpu-fp16)
and recorded in every report row, so that a figure says what it was measured with. Checked up
front: an unknown key or a bad value is an ``LSTMBenchError`` naming the option.

Keys (values are case-insensitive):

* ``graph_optimization_level``: disable_all | basic | extended | layout | all (also the
  ``ORT_ENABLE_BASIC`` spelling); onnxruntime's default is all.
* ``execution_mode``: sequential | parallel (the inter-op mode; default sequential).
* ``intra_op_spinning``: 0 | 1 (``session.intra_op.allow_spinning``: whether the intra-op pool
  spins between calls; on a small or busy machine it decides whether 2 threads help).
* ``inter_op_spinning``: 0 | 1 (``session.inter_op.allow_spinning``).
* ``inter_op_threads``: an integer >= 0 (0: onnxruntime chooses; lstm-bench uses 1).
* any key starting with ``session.``: passed as it is to ``add_session_config_entry`` (the
  keys of onnxruntime's ``onnxruntime_session_options_config_keys.h``). The switches among
  them (``session.intra_op.allow_spinning``, ``session.set_denormal_as_zero``, ...,
  ``_SWITCHES``) take 0 or 1 only: onnxruntime reads any other value, ``banana`` say, as
  off without a word, and the report would record ``banana``. Keys are at most 128
  characters and values 1024, the limits that header gives.

The intra-op thread count is ``--threads``, not an option here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_bench.errors import LSTMBenchError

_LEVELS = {"disable_all": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
           "extended": "ORT_ENABLE_EXTENDED", "layout": "ORT_ENABLE_LAYOUT",
           "all": "ORT_ENABLE_ALL"}
_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_SPINNING = {"intra_op_spinning": "session.intra_op.allow_spinning",
             "inter_op_spinning": "session.inter_op.allow_spinning"}
KEYS = ("graph_optimization_level", "execution_mode", *_SPINNING, "inter_op_threads")
# onnxruntime's config entries documented as "1" (on) or "0" (off); it reads them as
# value == "1", so anything else is off
_SWITCHES = {*_SPINNING.values(), "session.disable_prepacking", "session.use_env_allocators",
             "session.set_denormal_as_zero", "session.disable_quant_qdq",
             "session.disable_double_qdq_remover", "session.enable_quant_qdq_cleanup",
             "session.use_device_allocator_for_initializers", "session.force_spinning_stop",
             "session.strict_shape_type_inference"}
MAX_KEY, MAX_VALUE = 128, 1024


def _choice(key: str, value: str, choices: dict) -> str:
    word = value.strip().lower().removeprefix("ort_").removeprefix("enable_")
    if word not in choices:
        raise LSTMBenchError(f"--ort-option {key}={value}: expected one of "
                             f"{' | '.join(choices)}")
    return word


def _normalise(key: str, value: str) -> str:
    if len(key) > MAX_KEY or len(value) > MAX_VALUE:
        raise LSTMBenchError(f"--ort-option {key[:40]}{'...' if len(key) > 40 else ''}: "
                             f"onnxruntime takes keys of at most {MAX_KEY} characters and "
                             f"values of at most {MAX_VALUE}")
    if key == "graph_optimization_level":
        return _choice(key, value, _LEVELS)
    if key == "execution_mode":
        return _choice(key, value, _MODES)
    if key in _SPINNING or key in _SWITCHES:
        if value.strip() not in ("0", "1"):
            raise LSTMBenchError(f"--ort-option {key}={value}: expected 0 or 1")
        return value.strip()
    if key == "inter_op_threads":
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0 or number > 4096:
            raise LSTMBenchError(f"--ort-option {key}={value}: expected an integer 0..4096")
        return str(number)
    if key.startswith("session.") and len(key) > len("session."):
        return value
    raise LSTMBenchError(f"--ort-option {key}: unknown option; known: {', '.join(KEYS)}, "
                         "or an onnxruntime config key starting with 'session.'")


@dataclass(frozen=True)
class OrtOptions:
    """Validated onnxruntime session options, in the order given (a later key wins)."""

    items: tuple[tuple[str, str], ...] = ()

    def __bool__(self):
        return bool(self.items)

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)

    def apply(self, options) -> None:
        """Set these on an ``onnxruntime.SessionOptions``."""
        import onnxruntime

        for key, value in self.as_dict().items():
            if key == "graph_optimization_level":
                level = getattr(onnxruntime.GraphOptimizationLevel, _LEVELS[value], None)
                if level is None:
                    raise LSTMBenchError(f"--ort-option {key}={value}: onnxruntime "
                                         f"{onnxruntime.__version__} has no {_LEVELS[value]}")
                options.graph_optimization_level = level
            elif key == "execution_mode":
                options.execution_mode = getattr(onnxruntime.ExecutionMode, _MODES[value])
            elif key == "inter_op_threads":
                options.inter_op_num_threads = int(value)
            else:
                options.add_session_config_entry(_SPINNING.get(key, key), value)


def parse_ort_options(texts) -> OrtOptions:
    """``["KEY=VALUE", ...]`` (None or empty: no options) -> validated ``OrtOptions``."""
    items = []
    for text in texts or ():
        key, sep, value = str(text).partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise LSTMBenchError(f"--ort-option {text!r}: expected KEY=VALUE, e.g. "
                                 "intra_op_spinning=0")
        items.append((key, _normalise(key, value)))
    merged = dict(items)
    return OrtOptions(tuple(merged.items()))
