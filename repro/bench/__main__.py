"""``python -m repro.bench``: the CPU benchmarks (repro/bench/cpu.py)."""

import sys

from repro.bench.cpu import main

sys.exit(main())
