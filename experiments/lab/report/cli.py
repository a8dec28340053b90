"""The typeset report (Typst, US Letter, 11 pt, 1-inch margins) from results on disk.

The command line of ``experiments/report.py``: render the PDF, and optionally the Markdown
digest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..common import ROOT
from .document import render
from .markdown import write_markdown


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--results", type=Path, default=ROOT / "results" / "course_project")
    p.add_argument("--pdf", type=Path, default=None, help="default: RESULTS/report.pdf")
    p.add_argument("--build", type=Path, default=None, help="default: RESULTS/report_build")
    p.add_argument(
        "--results-md", type=Path, default=None, help="also write a Markdown digest here"
    )
    args = p.parse_args(argv)
    if not (args.results / "results.csv").exists():
        p.error(f"no results.csv in {args.results}; run course_project.py or compare.py first")
    pdf = render(args.results, args.pdf, build=args.build)
    if args.results_md is not None:
        write_markdown(args.results, args.results_md, pdf)
        print(f"[report] wrote {args.results_md}")
    return pdf
