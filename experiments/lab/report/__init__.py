"""The typeset report (Typst, US Letter, 11 pt, 1-inch margins) from results on disk.

    python experiments/report.py --results results/course_project
    python experiments/report.py --results results/compare --pdf figures/report.pdf

Reads the results folder (:mod:`lab.results` holds its layout) and never trains or
re-evaluates a model. Writes ``report.pdf`` (``--pdf``) and the Typst sources it was
compiled from (``report_build/``: ``main.typ`` and ``style.typ`` from
``lab/report_template/``, the generated ``body.typ`` and ``meta.json``, and the figures,
drawn at the size they are printed). The text is generated from the numbers: which model
wins by which measure, where the KDE and the exact likelihood disagree, what looks wrong in
the samples. The main text follows the course's list (models, datasets, training curves with
hyperparameters, qualitative and quantitative comparison); the appendix holds every dataset,
seed, hyperparameter and solver setting.

One module per concern, each importing only those before it:

* :mod:`~lab.report.text`: numbers into words, Typst escaping, the datasets' and families'
  text and the row labels;
* :mod:`~lab.report.analysis`: training trends, sample checks, noise floors, winners;
* :mod:`~lab.report.prose` and :mod:`~lab.report.studies_prose`: the generated text;
* :mod:`~lab.report.figures` and :mod:`~lab.report.tables`: what is drawn and tabulated;
* :mod:`~lab.report.document`: the Typst document and the PDF;
* :mod:`~lab.report.markdown`: the Markdown digest; :mod:`~lab.report.cli`: the command line.
"""

from .analysis import abnormalities, sample_checks, training_assessment, winners
from .cli import main
from .document import MAIN_TEXT_PAGE_LIMIT, body, load, main_text_pages, render
from .markdown import likelihood_markdown, write_markdown
from .prose import quantitative_text
from .tables import full_table, kde_table, quantitative_table
from .text import esc, plain_text

__all__ = [
    "MAIN_TEXT_PAGE_LIMIT",
    "abnormalities",
    "body",
    "esc",
    "full_table",
    "kde_table",
    "likelihood_markdown",
    "load",
    "main",
    "main_text_pages",
    "plain_text",
    "quantitative_table",
    "quantitative_text",
    "render",
    "sample_checks",
    "training_assessment",
    "winners",
    "write_markdown",
]
