"""`lstm-bench compare BASE.json NEW.json`: exit 1 when a row got slower beyond noise."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("base", help="the reference report (lstm-bench bench --json)")
    parser.add_argument("new", help="the report to judge")
    parser.add_argument("--fail-above", type=float, default=5.0, metavar="PCT",
                        help="a significant slowdown of the median above PCT percent is a "
                             "regression (default 5)")
    for option, what in (("json", "JSON"), ("md", "Markdown"), ("html", "HTML")):
        parser.add_argument(f"--{option}", metavar="PATH", help=f"write the verdicts as {what}")


def main(args) -> int:
    from rich.markup import escape

    from lstm_bench.bench.compare import changes_table, compare_reports, machine_drift
    from lstm_bench.bench.compare_report import write_compare_reports
    from lstm_bench.bench.report import load_json
    from lstm_bench.bench.terminal import make_console
    from lstm_bench.files import check_distinct, check_writable

    for option in ("json", "md", "html"):
        check_writable(getattr(args, option), f"--{option}")
    check_distinct({"BASE": args.base, "NEW": args.new},
                   {f"--{o}": getattr(args, o) for o in ("json", "md", "html")})

    base, new = load_json(args.base), load_json(args.new)
    changes = compare_reports(base, new, fail_above=args.fail_above)
    console = make_console()
    console.print(changes_table(changes, args.fail_above))
    drift = machine_drift(base, new)
    if drift:
        console.print(f"[yellow]warning:[/yellow] {escape(drift)}", highlight=False)
    for path in write_compare_reports(changes, base=args.base, new=args.new,
                                      fail_above=args.fail_above, notes=[drift] if drift else [],
                                      json=args.json, md=args.md, html=args.html):
        console.print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)
    regressions = [c for c in changes if c.regression]
    if regressions:
        console.print(f"[bold red]{len(regressions)} regression(s)[/bold red] of "
                      f"{len(changes)} rows", highlight=False)
        return 1
    console.print(f"no regression in {len(changes)} rows", highlight=False)
    return 0
