#!/usr/bin/env python
"""WISH speed and memory benchmark on the CPU (keys, targets and method: ``--help``, or wish_d2/benchmark/cli.py).

    python tools/benchmark.py --json benchmark.json
    python tools/benchmark.py --scale --json scale.json
"""
import os
import warnings

# tqdm's documented default for ``disable=``: the benchmark logs its own progress (read when tqdm is imported)
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

from wish_d2.benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
