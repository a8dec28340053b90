"""``python -m lab.studies`` (from ``experiments/``): the command line of :mod:`lab.studies.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main() and 0)
