"""Re-render the typeset report (and RESULTS.md-style Markdown) from a results folder on disk.

    python experiments/report.py --results results/course_project
    python experiments/report.py --results results/compare --pdf figures/report.pdf

Reads what ``compare.py`` or ``course_project.py`` wrote and never trains or re-evaluates a
model; the work is in :mod:`lab.report`.
"""

import sys

from lab.report import main

if __name__ == "__main__":
    sys.exit(main() and 0)
