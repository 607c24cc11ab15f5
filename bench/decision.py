"""The answer a report opens with: at each shape, which runtime to deploy and by how much it wins.

Candidates are the runtimes that passed verify (every measured runtime, said so, when the
report has no verify data). At each shape (batch, sequence length; streaming mode and chunk
when measured) each candidate is taken at its best thread count; the fastest median wins, and
its margin is the runner-up's median over the winner's. The margin is called clear only when
the two medians' 95 % confidence intervals do not overlap; otherwise the two are tied within
noise on this machine, and the sentence says so rather than crown a winner by noise.

A runtime's "best thread count" is the fewest threads whose median is within noise of its
fastest (the CIs overlap): more threads that buy nothing measurable only take cores from the
rest of the application, and their p99 is often worse.

A measured runtime the decision leaves out carries a marker (``Decision.mark``: "excluded:
drift") in every table and plot, which rank only the candidates (``bench.tables``,
``bench.plots``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lstm_bench.bench.stats import Measurement


def shape_label(key: tuple, short: bool = False) -> str:
    mode, chunk, batch, seq_len = key
    if mode == "streaming":
        return f"stream c={chunk} b={batch}" if short else \
            f"streaming, chunk {chunk}, batch {batch}"
    return f"b={batch} T={seq_len}" if short else f"batch {batch}, T {seq_len}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """1 thread, 2 threads; ``many`` for irregular plurals ("1 row has", "2 rows have")."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def who(m: Measurement, many_threads: bool) -> str:
    return f"{m.runtime} at {plural(m.threads, 'thread')}" if many_threads else m.runtime


def ratio(value: float) -> str:
    """3.21x, 32.1x, 321x: three figures at most."""
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x" if value < 100 else f"{value:.0f}x"


def overlap(a: Measurement, b: Measurement) -> bool | None:
    """Whether the 95 % CIs of two medians overlap (None when either has no interval)."""
    ca, cb = a.stats.median_ci, b.stats.median_ci
    if not ca or not cb:
        return None
    return not (ca[1] < cb[0] or cb[1] < ca[0])


@dataclass(frozen=True)
class ShapeDecision:
    shape: tuple
    winner: Measurement | None
    runner_up: Measurement | None
    many_threads: bool
    # the winner's fastest thread count, when a tie sent the winner to fewer threads
    winner_fastest: Measurement | None = None

    @property
    def margin(self) -> float | None:
        """How many times faster the winner is than the runner-up (runner-up median / winner's)."""
        if self.winner is None or self.runner_up is None:
            return None
        return self.runner_up.stats.median / max(self.winner.stats.median, 1e-12)

    @property
    def clear(self) -> bool | None:
        """True: CIs apart; False: a tie within noise; None: nothing to compare or no CI."""
        if self.winner is None or self.runner_up is None:
            return None
        apart = overlap(self.winner, self.runner_up)
        return None if apart is None else not apart

    def confidence(self) -> str:
        if self.runner_up is None:
            return "the only candidate measured"
        return {True: "clear: the 95 % CIs of the medians do not overlap",
                False: "not clear: the 95 % CIs of the medians overlap (noisy figures)",
                None: "confidence unknown: too few samples for a CI"}[self.clear]

    def sentence(self) -> str:
        label = shape_label(self.shape)
        if self.winner is None:
            return f"{label}: no runtime that passed verify was measured"
        w, r = self.winner, self.runner_up
        mode, chunk = self.shape[:2]
        per = ""
        if mode == "streaming":  # a call carries `chunk` steps
            per = " per call" + (f" ({w.stats.median / chunk:.4g} ms per step)" if chunk > 1 else "")
        if self.clear is False:  # a margin inside the noise is no win: say it is a tie
            return (f"{label}: {who(w, self.many_threads)} and {who(r, self.many_threads)} are "
                    f"tied within noise: {w.stats.median:.4g} vs {r.stats.median:.4g} ms{per} "
                    "(the 95 % CIs of the medians overlap)" + self.threads_note())
        text = f"{label}: {who(w, self.many_threads)}, {w.stats.median:.4g} ms{per}"
        if r is not None:
            text += (f", {ratio(self.margin)} faster than {who(r, self.many_threads)} "
                     f"({r.stats.median:.4g} ms); {self.confidence()}")
        else:
            text += f" ({self.confidence()})"
        return text + self.threads_note()

    def threads_note(self) -> str:
        """Why the winner runs at fewer threads than its fastest median, when it does."""
        w, fastest = self.winner, self.winner_fastest
        if w is None or fastest is None or fastest is w:
            return ""
        return (f"; {plural(w.threads, 'thread')} rather than {fastest.threads} "
                f"({fastest.stats.median:.4g} ms, within noise): fewer threads leave cores free "
                "for the rest of the application")

    def to_dict(self) -> dict:
        def brief(m):
            return None if m is None else {"runtime": m.runtime, "threads": m.threads,
                                           "median_ms": m.stats.median}
        return {"shape": dict(zip(("mode", "chunk", "batch", "seq_len"), self.shape)),
                "winner": brief(self.winner), "runner_up": brief(self.runner_up),
                "margin": self.margin, "clear": self.clear, "tie": self.clear is False,
                "sentence": self.sentence()}


@dataclass(frozen=True)
class Decision:
    shapes: list[ShapeDecision]
    excluded: dict[str, str] = field(default_factory=dict)  # runtime -> why
    verified: bool = True  # False: no verify data, candidates are every measured runtime
    # runtime -> the verdict that left it out ("drift", "fail", "skip", "error", "not verified")
    verdicts: dict[str, str] = field(default_factory=dict)

    def mark(self, runtime: str) -> str | None:
        """The marker every table and plot puts on a measured runtime the decision left out
        ("excluded: drift"), None for a candidate: such a row is never ranked "best"."""
        verdict = self.verdicts.get(runtime)
        return None if verdict is None else f"excluded: {verdict}"

    def marks(self) -> dict[str, str]:
        """runtime -> ``mark`` of every runtime left out."""
        return {name: self.mark(name) for name in self.verdicts}

    def lines(self) -> list[str]:
        """The decision in plain sentences, for every renderer."""
        lines = [s.sentence() for s in self.shapes]
        if not self.verified:
            lines.append("not verified: these runtimes were ranked by speed only; run "
                         "`lstm-bench verify` (or bench --verify-json) to rank verified ones")
        return lines

    def excluded_lines(self) -> list[str]:
        return [f"{name}: {why}" for name, why in self.excluded.items()]

    def to_dict(self) -> dict:
        return {"verified": self.verified, "shapes": [s.to_dict() for s in self.shapes],
                "excluded": dict(self.excluded), "excluded_as": dict(self.verdicts)}


def decide(report) -> Decision:
    """The decision of a ``BenchReport``."""
    verify = report.verify
    measured = {m.runtime for m in report.measurements}
    excluded: dict[str, str] = {}
    verdicts: dict[str, str] = {}  # what left each out, for the tables' and plots' markers
    if verify is not None:
        for name, verdict in verify.verdicts.items():
            if not verdict.passed:
                excluded[name] = verdict.why_excluded()
                verdicts[name] = verdict.status
        for name in sorted(measured - set(verify.verdicts)):
            excluded[name] = "not verified (measured, but not in the verify data)"
            verdicts[name] = "not verified"
    for skip in report.skipped:
        if skip.runtime not in measured and skip.runtime not in excluded:
            excluded[skip.runtime] = f"not measured: {skip.reason}"
            verdicts[skip.runtime] = "not measured"
    candidates = [m for m in report.measurements if m.runtime not in excluded]
    many_threads = len({m.threads for m in report.measurements}) > 1
    rows: dict[tuple, dict[str, list[Measurement]]] = {}
    for m in candidates:
        rows.setdefault(m.key.shape, {}).setdefault(m.runtime, []).append(m)
    shapes = []
    for key in sorted({m.key.shape for m in report.measurements}):
        best = {name: best_threads(ms) for name, ms in rows.get(key, {}).items()}
        ranked = sorted(best.values(), key=lambda pair: pair[0].stats.median)
        winner, fastest = ranked[0] if ranked else (None, None)
        shapes.append(ShapeDecision(key, winner, ranked[1][0] if len(ranked) > 1 else None,
                                    many_threads, fastest if fastest is not winner else None))
    return Decision(shapes, excluded, verified=verify is not None, verdicts=verdicts)


def best_threads(rows: list[Measurement]) -> tuple[Measurement, Measurement]:
    """(the row to deploy, the fastest row) of one runtime at one shape: the fewest threads
    whose median is within noise of the fastest (their 95 % CIs overlap), else the fastest."""
    fastest = min(rows, key=lambda m: m.stats.median)
    fewer = sorted((m for m in rows if (m.threads or 0) < (fastest.threads or 0)
                    and overlap(m, fastest)), key=lambda m: m.threads or 0)
    return (fewer[0] if fewer else fastest), fastest
