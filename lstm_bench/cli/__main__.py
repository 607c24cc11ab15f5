"""`python -m lstm_bench.cli`: the same command line as `lstm-bench`."""

import sys

from lstm_bench.cli import main

sys.exit(main())
