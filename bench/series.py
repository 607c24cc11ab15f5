"""The series the history database holds: one runtime at one shape and thread count, on one
model (sha256) and one CPU, over time; a change point wherever two consecutive points differ by
the same test ``lstm-bench compare`` applies (``bench.compare``), and the words and table that
say so."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field

from lstm_bench.bench.compare import Change, compare_measurements
from lstm_bench.bench.decision import plural, shape_label
from lstm_bench.bench.history import SERIES_ROW, connect
from lstm_bench.bench.report import check_row
from lstm_bench.bench.stats import Measurement, RowKey, Shape
from lstm_bench.bench.table import Column, Detail, Table
from lstm_bench.bench.tables import KEY_COLUMNS, keyed_groups
from lstm_bench.bench.text import ms_text
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import parse_json
from lstm_bench.schema import check


@dataclass
class Point:
    """One series' figure in one run."""

    run_id: int
    recorded: str
    git_commit: str | None
    measurement: Measurement
    change: Change | None = None  # compare's verdict against the previous point
    versions: str | None = None  # the libraries' versions (JSON text, as recorded)
    # the same commit (known) and library versions as the previous point: nothing of the code
    # changed, so a change between the two is the machine's (a busy or slow phase)
    same_code: bool = False


@dataclass(frozen=True)
class SeriesKey:
    """What a series follows: one row of the reports on one model (sha256) and one CPU."""

    model_sha256: str | None
    cpu: str | None
    row: RowKey


@dataclass
class Series:
    key: SeriesKey
    model_path: str | None
    fail_above: float = 5.0
    points: list[Point] = field(default_factory=list)

    @property
    def runtime(self) -> str:
        return self.key.row.runtime

    @property
    def threads(self) -> int | None:
        return self.key.row.threads

    @property
    def shape(self) -> Shape:
        return self.key.row.shape

    @property
    def model_cpu(self) -> tuple[str | None, str | None]:
        """(model sha256, CPU): the series of one model on one machine belong together."""
        return self.key.model_sha256, self.key.cpu

    @property
    def label(self) -> str:
        return f"{self.runtime} {shape_label(self.shape, short=True)} thr={self.threads}"

    def _beyond(self, point) -> bool:
        """Beyond noise *and* by more than fail_above percent either way: compare's
        regressions, and improvements of the same size."""
        c = point.change
        return c is not None and (c.regression or (c.verdict == "faster"
                                                   and c.change_pct < -self.fail_above))

    @property
    def change_points(self) -> list[Point]:
        """Runs that differ from the one before (``_beyond``) where the code changed too."""
        return [p for p in self.points if self._beyond(p) and not p.same_code]

    @property
    def machine_changes(self) -> list[Point]:
        """Changes as large between runs of the same code: the machine's, not flagged."""
        return [p for p in self.points if self._beyond(p) and p.same_code]


def load_series(path, *, fail_above: float = 5.0) -> list[Series]:
    """Every series in the database, points oldest first, each judged against the one before."""
    query = ("SELECT runs.id, runs.recorded, runs.git_commit, runs.versions, runs.model_sha256, "
             "runs.model_path, runs.cpu, results.runtime, results.mode, results.chunk, results.batch, "
             "results.seq_len, results.threads, results.row FROM results "
             "JOIN runs ON runs.id = results.run_id ORDER BY runs.id, results.id")
    with closing(connect(path, create=False)) as db:
        try:
            rows = db.execute(query).fetchall()
        except sqlite3.Error as exc:
            raise LSTMBenchError(f"{path}: cannot read the history ({exc})") from None
    series: dict[tuple, Series] = {}
    for values in rows:
        (run_id, recorded, commit, versions, sha, model_path, cpu, runtime, mode, chunk, batch,
         seq_len, threads, row) = values
        key = SeriesKey(sha, cpu, RowKey(runtime, batch, seq_len, threads, mode, chunk))
        measurement = _measurement(path, dict(zip(SERIES_ROW, values)), key.row)
        entry = series.setdefault(key, Series(key, model_path, fail_above))
        entry.points.append(Point(run_id, recorded, commit, measurement, versions=versions))
    for entry in series.values():
        for previous, point in zip(entry.points, entry.points[1:]):
            # compare's test and thresholds, over blocks, not calls
            point.change = compare_measurements(previous.measurement, point.measurement,
                                                fail_above=fail_above)
            point.same_code = (point.git_commit is not None
                               and (point.git_commit, point.versions)
                               == (previous.git_commit, previous.versions))
    return list(series.values())


def _measurement(path, columns: dict, key: RowKey) -> Measurement:
    """A result row read back: its columns of the types lstm-bench stores, its JSON of a bench
    report row's layout (``check_row``, nesting and text bounded) and of the same key as its
    columns; else LSTMBenchError (a crafted or damaged row)."""
    where = f"{path}: run {columns['run_id']!r}'s result row"
    check(columns, SERIES_ROW, where)
    row = parse_json(columns["row"], where, "result row")
    check_row(row, where)
    try:
        measurement = Measurement.from_dict(row)
    except (ValueError, KeyError, TypeError) as exc:
        raise LSTMBenchError(f"{where} is unreadable ({type(exc).__name__}: {exc})") from None
    if measurement.key != key:
        raise LSTMBenchError(f"{where} is unreadable (its JSON is of {measurement.label()}, "
                             "its columns of another)")
    return measurement


def change_lines(series) -> list[str]:
    """A sentence per change point: the run, the series, the figures and compare's p in the
    direction of the change."""
    lines = []
    for s in series:
        for p in s.change_points:
            c = p.change
            slower = c.verdict in ("regression", "slower")
            p_value = c.p_slower if slower else c.p_faster
            lines.append(f"run #{p.run_id} ({p.recorded}, commit {(p.git_commit or '?')[:12]}): "
                         f"{s.label}: {c.base_median_ms:.4g} -> {c.new_median_ms:.4g} ms "
                         f"({c.change_pct:+.1f} %, p {'slower' if slower else 'faster'} "
                         f"{p_value:.2g}): {c.verdict}")
    return lines


def machine_line(group) -> str | None:
    """How many changes beyond the thresholds came between runs of the same code (not
    flagged: the machine's), or None."""
    count = sum(len(s.machine_changes) for s in group)
    if not count:
        return None
    return (f"not flagged: {plural(count, 'change')} as large between runs of the same commit "
            "and library versions: the machine's (busy or slow phases), not the code's; "
            "`lstm-bench compare A.onnx B.onnx` measures two versions in the same phases")


def quiet_line(group) -> str:
    """What a model with no change points says: that its series stayed within noise only where
    there was a run before to compare with; one run alone is nothing tested yet."""
    single = sum(len(s.points) < 2 for s in group)
    if single == len(group):
        return "this model: only one run so far: nothing to compare yet"
    if any(s.machine_changes for s in group):  # said by machine_line
        text = "this model: no change points between runs whose code changed"
    else:
        text = (f"this model: no change points: {'every' if not single else 'each'} series "
                "with runs to compare stayed within noise")
    if single:
        text += f"; {plural(single, 'series', 'series')} with only one run so far: nothing to " \
                "compare yet"
    return text


def series_table(series) -> Table:
    """One model's series under a heading per shape and thread count: runs, the first and
    last median, the last two change points (the whole list is below the table); from
    ``table.WIDE_TERMINAL`` on, and on the page, the last commit too."""
    columns = KEY_COLUMNS + (Column("runs"), Column("first ms"), Column("last ms"),
                             Column("change points"),
                             Column("last commit", align="left", detail=Detail.WIDE))

    def cells(s: Series):
        flagged = s.change_points
        changes = ", ".join(f"#{p.run_id} {p.change.change_pct:+.0f}%" for p in flagged[-2:])
        if len(flagged) > 2:
            changes = "... " + changes
        return (str(len(s.points)), ms_text(s.points[0].measurement.stats.median),
                ms_text(s.points[-1].measurement.stats.median), changes or "none",
                (s.points[-1].git_commit or "?")[:12])

    def style(s: Series):
        return "red" if any(p.change.regression for p in s.change_points) else None
    return Table("", columns, keyed_groups(series, lambda s: s.key.row, cells, style))
