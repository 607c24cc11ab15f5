"""The series the history database holds: one runtime at one shape and thread count, on one
model (sha256) and one CPU, over time; each point judged against the one before by the test
``lstm-bench compare`` applies (``bench.compare``); change points where ``ruptures``' PELT
breaks the series and the same test between the segments confirms it
(``bench.changepoints``); and the words and table that say so."""

from __future__ import annotations

from dataclasses import dataclass, field

from lstm_bench.bench import speed
from lstm_bench.bench.changepoints import segment_changes
from lstm_bench.bench.compare import Change, compare_measurements
from lstm_bench.bench.decision import plural, shape_label
from lstm_bench.bench.gate import busy_cores
from lstm_bench.bench.history import SERIES_ROW, read_history
from lstm_bench.bench.history_sql import shown
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
    # the same commit (known) and library versions as the previous point, and one of the two
    # measured in one process (no spread between invocations to judge by): a change between
    # the two is the machine's (a busy or slow phase). With worker processes on both sides
    # compare's test already allows for that spread (issue 21)
    same_code: bool = False
    busy: float = 0.0  # the cores other processes took while it ran (compare.busy_cores)
    probe: dict | None = None  # the machine's speed probe beside its row (speed.probe)
    model_sha256: str | None = None  # the model it measured (a series outlives a re-export)
    # where a segment starts (``changepoints.segment_changes``): the segment against the one
    # before, beyond noise and the threshold; None elsewhere
    segment: Change | None = None


@dataclass(frozen=True)
class SeriesKey:
    """What a series follows: one row of the reports of one named series (``--series``,
    default the model file's name) on one machine (``history_sql.machine_fields``)."""

    series: str
    machine_id: str
    row: RowKey


@dataclass
class Series:
    key: SeriesKey
    model_path: str | None
    fail_above: float = 5.0
    points: list[Point] = field(default_factory=list)
    machine: dict = field(default_factory=dict)  # name, cpu, cores, gpu (machine_label)

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
    def series_machine(self) -> tuple[str, str]:
        """(series name, machine id): the series of one model on one machine belong together."""
        return self.key.series, self.key.machine_id

    @property
    def label(self) -> str:
        return f"{self.runtime} {shape_label(self.shape, short=True)} thr={self.threads}"

    @property
    def change_points(self) -> list[Point]:
        """Runs that start a segment (``Point.segment``) where the code changed too."""
        return [p for p in self.points if p.segment is not None and not p.same_code]

    @property
    def machine_changes(self) -> list[Point]:
        """Segments starting between runs of the same code: the machine's, not flagged."""
        return [p for p in self.points if p.segment is not None and p.same_code]


def load_series(path, *, fail_above: float = 5.0) -> list[Series]:
    """Every series in the database, points oldest first, judged (``judge``)."""
    series: dict[tuple, Series] = {}
    for columns in read_history(path):
        c = columns
        key = SeriesKey(c["series"], c["machine_id"], RowKey(c["runtime"], c["batch"],
                                                             c["seq_len"], c["threads"],
                                                             c["mode"], c["chunk"]))
        measurement = _measurement(shown(path), columns, key.row)
        entry = series.setdefault(key, Series(key, c["model_path"], fail_above, machine={
            "id": c["machine_id"], "name": c["machine_name"], "cpu": c["cpu"],
            "cores": c["cores"], "gpu": c["gpu"]}))
        entry.model_path = c["model_path"]  # the latest
        machine = {"machine": _machine(shown(path), columns)}
        entry.points.append(Point(c["run_id"], c["recorded"], c["git_commit"], measurement,
                                  versions=c["versions"], busy=busy_cores(machine),
                                  probe=speed.probe(machine, key.row.threads),
                                  model_sha256=c["model_sha256"]))
    for entry in series.values():
        judge(entry, fail_above)
    return list(series.values())


def judge(entry: Series, fail_above: float = 5.0) -> Series:
    """Each point of ``entry`` judged against the one before (``Point.change``, ``same_code``),
    and the series' change points found (``Point.segment``)."""
    for previous, point in zip(entry.points, entry.points[1:]):
        # compare's test and thresholds: over the runs' worker processes, each run's
        # load allowed for, as between two saved reports
        point.change = compare_measurements(previous.measurement, point.measurement,
                                            fail_above=fail_above,
                                            busy=(previous.busy, point.busy),
                                            probes=(previous.probe, point.probe))
        one_process = min(len(p.measurement.process_ms) for p in (previous, point)) < 2
        point.same_code = (one_process and point.git_commit is not None
                           and (point.git_commit, point.versions)
                           == (previous.git_commit, previous.versions))
    for index, change in segment_changes(entry.points, fail_above):
        entry.points[index].segment = change
    return entry


def _machine(path, columns: dict) -> dict:
    """The run's recorded machine section (its load, its speed probe), or {}."""
    if columns.get("machine") is None:
        return {}
    machine = parse_json(columns["machine"], f"{path}: run {columns['run_id']!r}'s machine",
                         "machine")
    return machine if isinstance(machine, dict) else {}


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
    """A sentence per change point: the run, the series, the medians of the segments before
    and from it, and compare's p in the direction of the change."""
    lines = []
    for s in series:
        for p in s.change_points:
            c = p.segment
            slower = c.verdict in ("regression", "slower")
            p_value = c.p_slower if slower else c.p_faster
            lines.append(f"run #{p.run_id} ({p.recorded}, commit {(p.git_commit or '?')[:12]}): "
                         f"{s.label}: {c.base_median_ms:.4g} -> {c.new_median_ms:.4g} ms "
                         f"({c.change_pct:+.1f} %, p {'slower' if slower else 'faster'} "
                         f"{p_value:.2g}): {c.verdict}{attribution(s, p)}")
    return lines


def changed(before: Point, after: Point) -> list[str]:
    """What changed between two runs of a series: the model (its sha256), the commit, the
    libraries (those whose versions differ, named)."""
    what = []
    if before.model_sha256 != after.model_sha256:
        what.append("model changed")
    if before.git_commit != after.git_commit:
        what.append("commit changed")
    if before.versions != after.versions:
        try:
            old, new = (parse_json(p.versions or "{}", "versions", "versions")
                        for p in (before, after))
        except LSTMBenchError:
            old = new = None
        if isinstance(old, dict) and isinstance(new, dict):
            names = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
            what += [] if not names else ["libraries changed: " + ", ".join(
                f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in names[:3])
                + (" ..." if len(names) > 3 else "")]
        else:  # not the {library: version} lstm-bench writes: said without the names
            what.append("libraries changed")
    return what


def attribution(s: Series, point: Point) -> str:
    """`` (model changed, commit changed)``: what changed since the run before, or that nothing
    recorded did."""
    index = s.points.index(point)
    if index == 0:
        return ""
    what = changed(s.points[index - 1], point)
    return f" ({'; '.join(what) if what else 'same model, commit and libraries'})"


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
        changes = ", ".join(f"#{p.run_id} {p.segment.change_pct:+.0f}%" for p in flagged[-2:])
        if len(flagged) > 2:
            changes = "... " + changes
        return (str(len(s.points)), ms_text(s.points[0].measurement.stats.median),
                ms_text(s.points[-1].measurement.stats.median), changes or "none",
                (s.points[-1].git_commit or "?")[:12])

    def style(s: Series):
        return "red" if any(p.segment.regression for p in s.change_points) else None
    return Table("", columns, keyed_groups(series, lambda s: s.key.row, cells, style))
