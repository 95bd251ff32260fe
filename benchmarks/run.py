"""Benchmarks: `python benchmarks/run.py [--quick] [--only focal ce] [--json out.json]` (same as `focalkit bench`).

Prints, for each loss and shape, the median forward+backward time and peak memory of focalkit,
of the textbook eager formula and of the peers installed (kornia, MONAI), each case in a fresh
subprocess, with the ratios against the textbook formula measured in the same run.
"""

import argparse
import sys

from focalkit.bench import run_bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="loss names, e.g. focal ghmc30 ce")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    sys.exit(run_bench(parser.parse_args()))
