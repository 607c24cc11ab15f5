"""The progress of a sweep on the terminal: a bar and the results so far, on stderr."""

from __future__ import annotations

from lstm_bench.bench.decision import plural
from lstm_bench.bench.tables import latency_table
from lstm_bench.cli.terminal import grid, make_console


class LiveDisplay:
    """A progress line and a table of the results so far, on stderr, while a sweep runs."""

    def __init__(self, total: int, console=None):
        self.console = console or make_console(stderr=True)  # a skip's reason may name a file
        self.total = total
        self.rows: list = []
        self.skips: list = []  # shown while the sweep runs; the report states them after
        self.live = None

    def __enter__(self):
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=self.console)
        self.task = self.progress.add_task("benchmark", total=self.total)
        self.group = Group(self.progress)
        self.live = Live(self.group, console=self.console, refresh_per_second=8, transient=True)
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def __call__(self, kind: str, **info) -> None:
        if self.live is None:
            return
        if kind == "open":
            self.progress.update(self.task, description=f"opening {info['runtime']} "
                                 f"({plural(info['threads'], 'thread')})")
        elif kind == "skip":
            # in the live region, not printed: the report (or the command's one error line,
            # when no runtime ran) says it again, so a printed line would be said twice
            from rich.text import Text

            self.progress.advance(self.task)
            self.skips.append(Text(f"skipped {info['runtime']}: {info['reason']}", style="dim",
                                   no_wrap=True, overflow="ellipsis"))
            self._show()
        elif kind == "opened":
            self.progress.advance(self.task)
        elif kind == "timing":
            self.progress.update(self.task, description=f"timing {plural(info['cells'], 'cell')}"
                                 f", {plural(info['threads'], 'thread')}")
        elif kind == "process":
            self.progress.update(self.task, description=f"worker process {info['process'] + 1}"
                                 f" of {info['processes']}")
        elif kind == "result":
            self.rows.append(info["measurement"])
            self._show()
        elif kind == "done":
            self.progress.advance(self.task)

    def _show(self) -> None:
        from rich.console import Group

        # the sweep's rows as the harness made them: whole-sequence rows, streaming ones too
        table = [grid(latency_table(self.rows[-12:]), self.console.width)] if self.rows else []
        self.live.update(Group(self.progress, *self.skips[-4:], *table))
