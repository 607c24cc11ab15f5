"""A trial of each runtime in a child process before bench times it: a runtime that crashes
(onnxruntime segfaulting on a float16 model, an abort, the out-of-memory killer) is left out
with the reason, so that the others' rows and the report are still made.

The timing itself stays where it was (this process, or the ``--processes`` workers): a runtime
is measured as it is deployed. A crash that only the timed calls meet is caught in the workers
(``bench.runner.measure_in_processes``: the worker names the runtime it was calling), not in
this process (``--processes 1``). The trial opens each runtime that loads native code
(``lstm_bench.verify.isolate``) in one child, with the first thread count, and runs it once at
every shape, as the harness does before it times.
"""

from __future__ import annotations

from lstm_bench.bench.deadline import overran
from lstm_bench.bench.streaming import streaming_factories
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import limit_seconds
from lstm_bench.verify import isolate


def trial_crashes(plan, factories: dict, ports=None) -> list[dict]:
    """The runtimes of ``factories`` (name -> factory) that crashed in their trial on a model
    of ``plan``, as skips ({"runtime", "threads": None, "reason": "crashed: SIGSEGV while
    opening"}). ``ports``: a streaming plan's, through which each runtime streams. A trial step
    beyond LSTM_BENCH_CALL_TIMEOUT_S is a runaway model: LSTMBenchError, as in the timing."""
    isolated = {name: f for name, f in factories.items() if isolate.needs_child(f)}
    crashed: dict[str, dict] = {}
    if not isolated:
        return []
    limit = limit_seconds("LSTM_BENCH_CALL_TIMEOUT_S")
    inputs = (None if plan.inputs is None
              else isolate.Shared(f"inputs {id(plan.inputs)}", plan.inputs))
    with isolate.session() as child:
        for model in plan.models:
            shared = isolate.Shared(f"model {id(model)}", model)
            for name, factory in isolated.items():
                if name in crashed:
                    continue
                try:
                    child.call(_trial, factory, shared, ports, plan.threads[0], plan.shapes,
                               inputs, plan.seed, limit=limit)
                except isolate.Crashed as exc:
                    if exc.timed_out:
                        # worded as the timing's own limit (``deadline.deadline``) words it
                        raise LSTMBenchError(overran(
                            f"{name}: opening the model and its first runs", limit)) from None
                    on = f" on {model.path.name}" if len(plan.models) > 1 else ""
                    crashed[name] = {"runtime": name, "threads": None, "reason": exc.reason + on}
    return list(crashed.values())


def _trial(factory, model, ports, threads, shapes, inputs, seed, *, phase) -> None:
    """In the child: open, and run once at each shape. A runtime's own error is left to the
    timing, which reports it as it always does; only a crash matters here."""
    if ports is not None:  # wrapped as the timing wraps it
        factory = streaming_factories({"trial": factory}, ports)["trial"]
    runtime = factory()
    length = "seq_len" if ports is None else "chunk"
    try:
        phase("loading its library")
        if runtime.available():
            return
        phase("opening")
        runtime.open(model, threads=threads)
        for batch, steps in shapes:
            feeds = inputs.feeds if inputs is not None else model.feeds(batch, steps, seed)
            phase(f"running at batch {batch}, {length} {steps}")
            runtime.run(feeds)
            runtime.synchronize()
    except Exception:  # not a crash: the timing says what went wrong
        return
    finally:
        runtime.close()
