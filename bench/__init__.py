"""The benchmark harness: timing, statistics, sweeps and reports.

``harness`` owns the clock (warm-up, paced rounds of blocks over a span of wall time, cold
start, memory), ``stats`` turns raw samples into figures over blocks, ``machine`` says what
they were measured on (and sets thread counts, load average), ``model`` gives a model's
feeds and FLOPs, ``runner`` ties them into one sweep (in this process or in worker
processes) with a live display, ``report`` and ``plots`` render (JSON, terminal, Markdown,
HTML), ``compare`` judges two reports or two models live, ``fidelity`` measures the harness
itself and ``repro`` measures reproducibility and the regression gate. ``cli_bench``, ``cli_compare`` and ``cli_run`` are
the subcommands. docs/bench.md explains each figure.
"""
