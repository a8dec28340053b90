"""``python -m lab.report`` (from ``experiments/``): the command line of :mod:`lab.report.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main() and 0)
