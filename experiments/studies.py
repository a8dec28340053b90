"""Run the KDE and sampler studies on a results folder on disk.

    python experiments/studies.py --results results/course_project   # both
    python experiments/studies.py --results DIR --only kde

The work is in :mod:`lab.studies`.
"""

import sys

from lab.studies import main

if __name__ == "__main__":
    sys.exit(main() and 0)
