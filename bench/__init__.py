"""The benchmark harness: timing, statistics, sweeps and reports.

``harness`` owns the clock (warm-up, round-robin rounds, cold start, memory), ``stats`` turns
raw samples into figures, ``machine`` says what they were measured on, ``model`` gives a
model's feeds and FLOPs, ``runner`` ties them into one sweep with a live display, ``report``
and ``plots`` render (JSON, terminal, Markdown, HTML), ``compare`` judges two reports, and
``fidelity`` measures the harness itself. ``cli_bench``, ``cli_compare`` and ``cli_run`` are
the subcommands. docs/bench.md explains each figure.
"""
