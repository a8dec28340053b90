"""MkDocs hooks for the flowlab site: every asset comes from local files, nothing is fetched.

* the committed figures (``figures/*.png``, ``*.gif``) are added to the site as
  ``figures/<name>``, so the family pages show them without retraining anything;
* the executed notebook ``notebooks/ode_trajectories.ipynb`` is added as a page (rendered by
  mkdocs-jupyter from its stored outputs, never executed here); nbconvert's HTML exporter
  does not render ``image/gif`` outputs (the animation), so a copy of the notebook in which
  each GIF output also carries an ``<img>`` with the same data is rendered instead;
* MathJax 3 is served from the copy that the ``sphinx-mathjax-offline`` package ships
  (``assets/mathjax/``), not from a CDN; the notebook page's own CDN MathJax tag, which
  mkdocs-jupyter always writes, is removed (the site's MathJax typesets the notebook too).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tempfile
from pathlib import Path

import mkdocs.plugins
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
FIGURE_SUFFIXES = (".png", ".gif")
NOTEBOOKS = ("ode_trajectories.ipynb",)

# What MathJax's tex-chtml component loads at run time, relative to its own directory: the
# CHTML fonts, TeX extensions that \require or autoload pulls in, and the menu.
MATHJAX_FILES = (
    "tex-chtml.js",
    "output/chtml/fonts/woff-v2/*.woff",
    "input/tex/extensions/*.js",
    "ui/*.js",
)
MATHJAX_DIST = "sphinx-mathjax-offline"

# mkdocs-jupyter's `custom_mathjax_url` (mkdocs.yml) is set to this placeholder; the tag
# that loads it and nbconvert's MathJax-2 configuration block are stripped from the page.
NOTEBOOK_MATHJAX_PLACEHOLDER = "flowlab-site-mathjax"
_NOTEBOOK_MATHJAX = re.compile(
    r'<script src="' + NOTEBOOK_MATHJAX_PLACEHOLDER + r'">\s*</script>'
    r"|<!-- Load mathjax -->"
    r'|<script type="text/x-mathjax-config">.*?</script>'
    r"|<!-- End of mathjax configuration -->",
    re.DOTALL,
)


def mathjax_dir() -> Path:
    """The directory holding MathJax's ``tex-chtml.js`` in the installed package."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise PluginError(
            f"MathJax is served from the {MATHJAX_DIST!r} package, which is not installed: "
            "pip install -e '.[docs]'"
        ) from None
    for f in dist.files or ():
        if f.name == "tex-chtml.js":
            return Path(dist.locate_file(f)).resolve().parent
    raise PluginError(f"{MATHJAX_DIST!r} is installed but holds no tex-chtml.js")


def _add_from_root(files: Files, config, path: Path, src_dir: Path = ROOT) -> None:
    """A file of the repository, at the same path in the site (a real source file, so that
    mkdocs-jupyter can read a notebook from it)."""
    uri = path.relative_to(src_dir).as_posix()
    if files.get_file_from_path(uri) is None:
        files.append(File(uri, str(src_dir), config["site_dir"], config["use_directory_urls"]))


def gif_outputs_as_html(notebook: dict) -> dict:
    """``notebook`` with an ``<img>`` (``text/html``) beside every ``image/gif`` output."""
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/gif" in data and "text/html" not in data:
                gif = data["image/gif"]
                gif = "".join(gif) if isinstance(gif, list) else gif
                data["text/html"] = (
                    f'<img alt="animation" src="data:image/gif;base64,{gif.strip()}">'
                )
    return notebook


_TMP: list[str] = []


def _renderable_notebooks() -> Path:
    """A temporary directory holding ``notebooks/<name>`` with GIF outputs made renderable."""
    tmp = Path(tempfile.mkdtemp(prefix="flowlab-docs-"))
    _TMP.append(str(tmp))
    for name in NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
        out = tmp / "notebooks" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(gif_outputs_as_html(nb)), encoding="utf-8")
    return tmp


@mkdocs.plugins.event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    for path in sorted((ROOT / "figures").iterdir()):
        if path.suffix in FIGURE_SUFFIXES:
            _add_from_root(files, config, path)
    tmp = _renderable_notebooks()
    for name in NOTEBOOKS:
        _add_from_root(files, config, tmp / "notebooks" / name, src_dir=tmp)
    mj = mathjax_dir()
    for pattern in MATHJAX_FILES:
        for path in sorted(mj.glob(pattern)):
            uri = f"assets/mathjax/{path.relative_to(mj).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_content(html: str, page, config, files) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        html = _NOTEBOOK_MATHJAX.sub("", html)
    return html


def on_post_build(config) -> None:
    while _TMP:
        shutil.rmtree(_TMP.pop(), ignore_errors=True)
