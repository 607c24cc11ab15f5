"""What a benchmark measures, decided once before anything runs: ``SweepPlan``.

Every bench (``bench``, ``bench --streaming``, ``run`` and the live ``compare``) builds one plan
(``sweep_shapes`` picks its shapes) and hands it to ``bench.runner.run_plan``. A worker process
(``--processes``) gets the plan as plain data (``SweepPlan.as_job``) and makes the same plan,
and the same runtimes with the same options, from it (``SweepPlan.from_job``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

from lstm_bench.bench.harness import Clock, Settings
from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import Given, Inputs, check_given, fed_seq_len, load_inputs
from lstm_bench.feeds import fit_batches as fit
from lstm_bench.feeds.batch import resolve
from lstm_bench.files import check_total_size, size_text
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_options import OrtOptions
from lstm_bench.runtimes.registry import RUNTIMES, make_factories


def quiet(total: int):
    """The display of a sweep nobody watches. A plan's ``display`` is called with the count of
    steps and gives a context whose value takes the sweep's events
    (``lstm_bench.cli.progress.LiveDisplay`` draws them)."""
    return nullcontext(lambda kind, **info: None)


@dataclass(frozen=True)
class RuntimeChoice:
    """The registered runtimes a sweep asked for, and the options they are made with."""

    names: tuple[str, ...]
    ort_options: OrtOptions = OrtOptions()

    @classmethod
    def of(cls, names=None, ort_options: OrtOptions | None = None) -> RuntimeChoice:
        """``names``: registered names (checked by ``factories``), or None for all of them."""
        return cls(tuple(dict.fromkeys(names or RUNTIMES)), ort_options or OrtOptions())

    def factories(self) -> dict:
        """Name -> factory of a fresh runtime made with its options."""
        return make_factories(self.names, self.ort_options)

    def pick(self) -> tuple[dict, list[dict]]:
        """(name -> factory of the ones available here, [{"runtime", "threads", "reason"} for
        the others]); asking loads each runtime's library."""
        chosen, skipped = {}, []
        for name, factory in self.factories().items():
            reason = factory().available()
            if reason:
                skipped.append({"runtime": name, "threads": None, "reason": reason})
            else:
                chosen[name] = factory
        if not chosen:
            raise LSTMBenchError("no runtime can run here: " + "; ".join(
                f"{s['runtime']}: {s['reason']}" for s in skipped))
        return chosen, skipped


@dataclass(frozen=True)
class SweepPlan:
    """One sweep: every runtime on every model at every shape and thread count."""

    models: tuple[Model, ...]
    runtimes: RuntimeChoice
    shapes: tuple[tuple[int, int], ...]  # (batch, seq_len); streaming: (batch, chunk)
    threads: tuple[int, ...]
    settings: Settings = Settings()
    calibrate: bool = True  # time a GEMM in the rotation, for the rows' % of peak
    inputs: Inputs | None = None  # the feeds of an .npz (one shape); None: random from seed
    seed: int = 0
    # each call one chunk of steps, the LSTM state carried between calls (bench.streaming)
    streaming: bool = False
    notes: tuple[str, ...] = ()  # what was chosen for the user (the batch a model fixes)
    command: str = "bench"  # names the sweep in the memory check's message
    display: Callable = quiet
    clock: Clock = time.perf_counter_ns

    @property
    def lengths(self) -> list[int]:
        """The sequence lengths (streaming: the chunks) of the shapes, in order."""
        return list(dict.fromkeys(t for _, t in self.shapes))

    def as_job(self) -> dict:
        """The plan as plain data for a worker process (no display, the real clock)."""
        return {"models": [str(m.path) for m in self.models],
                "given": [m.given.as_dict() for m in self.models],
                "runtimes": {"names": list(self.runtimes.names),
                             "ort_options": self.runtimes.ort_options.as_dict()},
                "shapes": [list(s) for s in self.shapes], "threads": list(self.threads),
                "settings": self.settings.as_dict(), "calibrate": self.calibrate,
                "inputs": None if self.inputs is None else self.inputs.source,
                "seed": self.seed, "streaming": self.streaming}

    @classmethod
    def from_job(cls, job: dict) -> SweepPlan:
        """The plan of ``as_job``'s data, each model read once more (this is a fresh process),
        and the .npz too."""
        models = tuple(Model.load(path).with_given(Given.from_dict(given))
                       for path, given in zip(job["models"], job["given"]))
        runtimes = job["runtimes"]
        return cls(models,
                   RuntimeChoice(tuple(runtimes["names"]),
                                 OrtOptions(tuple(runtimes["ort_options"].items()))),
                   tuple(tuple(s) for s in job["shapes"]), tuple(job["threads"]),
                   Settings(**job["settings"]), calibrate=job["calibrate"],
                   inputs=None if job["inputs"] is None
                   else load_inputs(job["inputs"], models[0].proto),
                   seed=job["seed"], streaming=job["streaming"])


def fit_batches(model, batches, default) -> tuple[list[int], list[str]]:
    """(the batch sizes to measure ``model`` at, notes): ``batches`` as asked (None:
    ``default``), checked against a batch the model fixes (``feeds.fit_batches``)."""
    fitted, note = fit(model.proto, batches, default, where=model.path.name,
                       given=model.given)
    return fitted, [note] if note else []


def sweep_shapes(models, batches=None, lengths=None, *, default_batches=(1,),
                 inputs: Inputs | None = None) -> tuple[tuple, tuple[str, ...]]:
    """(the (batch, seq_len) shapes to measure ``models`` at, notes on what was chosen).

    ``batches``: the sizes asked for (every model must take them: one that fixes its batch
    refuses others), or None for ``default_batches`` (the first model's own batch where it
    fixes one; a note says so). ``lengths``: the sequence lengths (or streaming chunks) asked
    for; None: the first model's (the length it fixes, else 100). ``inputs``: the feeds of an
    .npz: their one shape is measured (an asked batch or length must equal it).
    """
    if inputs is not None:
        check_given(inputs, batch=batches, seq_len=lengths)  # the file's shape, not another
        return ((inputs.batch, inputs.seq_len or 1),), ()
    batches, notes = fit_batches(models[0], batches, default_batches)
    for other in models[1:]:
        fit_batches(other, batches, None)  # refuses what another model cannot take
    lengths, note = fit_lengths(models, lengths)
    return tuple((b, t) for b in batches for t in lengths), tuple(notes + [note] * bool(note))


def fit_lengths(models, lengths) -> tuple[list[int], str | None]:
    """(the sequence lengths to measure ``models`` at, a note or None): ``lengths`` as asked,
    or None for the length a model fixes, else the first model's default. An LSTM cell
    unrolled at export keeps the length it was traced at: its LSTM-node twin in a comparison is
    fed that length too (the note says so), and an asked length it cannot take is refused here,
    naming it."""
    fixed = {}
    for model in models:
        size = resolve(model.proto, None, None, model.given)[3]
        if size:
            fixed[model.path.name] = size
    if lengths is None:
        if len(set(fixed.values())) > 1:
            raise LSTMBenchError("the models fix different sequence lengths (" + ", ".join(
                f"{name}: {size}" for name, size in fixed.items()) + "): no length can be fed "
                "to all of them")
        if not fixed:
            return [fed_seq_len(models[0].proto, None, models[0].given)], None
        size = next(iter(fixed.values()))
        note = (f"measured at seq_len {size}, the length {', '.join(fixed)} fix"
                f"{'es' * (len(fixed) == 1)}" if len(fixed) < len(models) else None)
        return [size], note
    if len(models) > 1:
        for name, size in fixed.items():
            if any(length != size for length in lengths):
                raise LSTMBenchError(
                    f"{name} fixes the sequence length at {size}; --seq-len "
                    f"{','.join(map(str, lengths))} cannot be fed to it (leave --seq-len out: "
                    f"every model is then measured at {size})")
    return list(lengths), None


def check_memory(models, shapes, runtimes: int, command: str, fed=None) -> None:
    """Refuse, before any feed is made, a sweep whose feeds and outputs would exceed
    LSTM_BENCH_MAX_FEEDS_MB. The harness holds the feeds of every shape of every model for the
    whole sweep, and every runtime of a thread count is open at once, each keeping its outputs
    of every shape it ran (an estimate: ``lstm_bench.model.HELD_PER_Y``). A worker process
    (``--processes``) holds the same; its parent holds none of them but an .npz's. ``fed``: the ``Inputs`` of ``--inputs``, the one shape's
    feeds. Sizing each shape's feeds (``Model.feed_bytes``) also refuses a shape the model
    cannot be fed."""
    feeds, outputs = [], []
    for model in models:
        name = f"{model.path.name}: " if len(models) > 1 else ""
        for batch, seq_len in shapes:
            at = f"batch {batch} x seq_len {seq_len}"
            if fed is not None:  # the file's shapes, bounded as random feeds' are
                model.check_values_at({n: a.shape for n, a in fed.feeds.items()})
            feeds.append((f"{name}feeds at {at}",
                          sum(a.nbytes for a in fed.feeds.values()) if fed is not None
                          else model.feed_bytes(batch, seq_len)))
            outputs.append((f"{name}outputs at {at}", runtimes * model.output_bytes(batch, seq_len)))
    size = lambda parts: size_text(sum(n for _, n in parts))  # noqa: E731
    check_total_size(feeds + outputs, f"{command}: the feeds of {len(feeds)} shape"
                     f"{'s' * (len(feeds) > 1)} ({size(feeds)}) and the outputs kept by its "
                     f"{runtimes} runtime{'s' * (runtimes > 1)} ({size(outputs)}, estimated)")
