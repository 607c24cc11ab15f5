"""The benchmark harness: timing, statistics, sweeps and reports."""
