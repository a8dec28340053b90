"""The documentation cannot drift from the code.

* every ```python block of ``docs/**/*.md`` runs, page by page in one namespace (a page reads
  like a notebook), and the blocks' own asserts hold;
* every ``>>>`` example in a flowlab docstring passes (doctest);
* every public name of flowlab (``flowlab.__all__`` and the ``__all__`` of every public
  submodule that ``flowlab/__init__.py`` imports or names) has a reference entry: a
  ``::: path`` directive of ``docs/api/*.md`` documents it (fast, no docs toolchain
  needed), and — when a built site is given (``FLOWLAB_DOCS_SITE``, as ``nox -s docs``
  does) — the site's ``objects.inv`` lists it, at a page and anchor that exist;
* the built site is offline: no script, stylesheet, image or font is loaded from another
  host, and MathJax is the local copy.

``test_site_build_strict`` (slow) builds the site itself with ``mkdocs build --strict``.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import io
import os
import pkgutil
import re
import subprocess
import sys
import types
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import flowlab

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SITE_ENV = "FLOWLAB_DOCS_SITE"

# -- code examples in the docs --------------------------------------------------------------

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def code_blocks(text: str, language: str = "python") -> list[tuple[int, str]]:
    """``(first line number, code)`` of every fenced block whose info string starts with
    ``language`` (indented blocks are dedented by their fence's indentation)."""
    blocks = []
    for match in _FENCE.finditer(text):
        info = match.group("info").strip().split()
        if not info or info[0] != language:
            continue
        indent = len(match.group("indent"))
        body = "".join(line[indent:] for line in match.group("body").splitlines(keepends=True))
        lineno = text.count("\n", 0, match.start("body")) + 1
        blocks.append((lineno, body))
    return blocks


def _pages_with_python() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if code_blocks(p.read_text(encoding="utf-8")))


def test_code_blocks_parser():
    text = (
        "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n"
        "  ```python title='t'\n  y = 2\n  ```\n"
    )
    assert code_blocks(text) == [(3, "x = 1\n"), (11, "y = 2\n")]
    assert code_blocks(text, "bash") == [(7, "ls\n")]


def test_docs_have_examples():
    """The pages that promise examples have them (the parser found every block)."""
    pages = {p.relative_to(DOCS).as_posix() for p in _pages_with_python()}
    expected = {
        "index.md",
        "getting-started.md",
        "families/cnf.md",
        "families/diffusion.md",
        "families/ddpm.md",
        "families/single-noise.md",
        "families/vae.md",
        "families/ebm.md",
        "families/gan.md",
        "guides/likelihood-ode.md",
        "guides/training.md",
        "guides/datasets.md",
        "guides/metrics.md",
    }
    assert expected <= pages, f"pages without a python example: {sorted(expected - pages)}"


# Pages whose examples run only in the slow suite (relative to docs/): empty, every example
# runs in the fast suite. The examples are compile-bound (each new model, sampler or shape
# is one XLA compile); if they outgrow the fast suite's budget, list the heaviest pages here.
SLOW_PAGES: set[str] = set()


def _page_params():
    for page in _pages_with_python():
        name = page.relative_to(DOCS).as_posix()
        marks = [pytest.mark.slow] if name in SLOW_PAGES else []
        yield pytest.param(page, id=name, marks=marks)


@pytest.mark.parametrize("page", list(_page_params()))
def test_docs_examples_run(page: Path, tmp_path, monkeypatch):
    """Run a page's python blocks in order in one namespace, in a scratch directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    # a real module, as a notebook's __main__ is: dataclasses (Equinox modules) defined in an
    # example look their module up in sys.modules
    module = types.ModuleType("flowlab_docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    text = page.read_text(encoding="utf-8")
    try:
        for lineno, code in code_blocks(text):
            # pad with newlines so that tracebacks point at the line of the page
            exec(compile("\n" * (lineno - 1) + code, str(page), "exec"), module.__dict__)
    finally:
        plt.close("all")


# -- docstring examples ---------------------------------------------------------------------


def _flowlab_modules() -> list[str]:
    names = ["flowlab"]
    for info in pkgutil.walk_packages(flowlab.__path__, "flowlab."):
        names.append(info.name)
    return sorted(names)


def test_docstring_examples_run():
    """Every ``>>>`` example in flowlab's docstrings passes (doctest, ELLIPSIS and
    NORMALIZE_WHITESPACE), for every module of the package."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    failures, examples = [], 0
    for name in _flowlab_modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if not test.examples:
                continue
            out = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=flags)
            result = runner.run(test, out=out.write, clear_globs=True)
            examples += result.attempted
            if result.failed:
                failures.append(f"{test.name}:\n{out.getvalue()}")
    assert not failures, "\n".join(failures)
    # (examples may be 0: the check guards the ones that are written)
    assert examples >= 0


# -- every public name has a reference entry ---------------------------------------------


def public_modules() -> list[str]:
    """``flowlab`` and its public submodules that ``flowlab/__init__.py`` imports (``from .x
    import ...``, ``from . import x``) or names in ``__all__`` (lazily imported ones)."""
    tree = ast.parse((ROOT / "flowlab" / "__init__.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is None:
                names.update(alias.name for alias in node.names)
            else:
                names.add(node.module.split(".")[0])
    names.update(n for n in flowlab.__all__ if _is_submodule(n))
    mods = ["flowlab"]
    for name in sorted(names):
        if name.startswith("_"):
            continue
        module = importlib.import_module(f"flowlab.{name}")
        if hasattr(module, "__all__"):
            mods.append(module.__name__)
    return mods


def _is_submodule(name: str) -> bool:
    return (ROOT / "flowlab" / f"{name}.py").exists() or (ROOT / "flowlab" / name).is_dir()


def public_names() -> dict[str, object]:
    """Every public dotted name -> the object it names."""
    names = {}
    for mod_name in public_modules():
        module = importlib.import_module(mod_name)
        for name in module.__all__:
            names[f"{mod_name}.{name}"] = getattr(module, name)
    return names


def test_public_names_found():
    names = public_names()
    for expected in ("flowlab.CNF", "flowlab.samplers.DDIM", "flowlab.datasets.entropy"):
        assert expected in names
    assert len(names) > 100


_DIRECTIVE = re.compile(r"^:::[ \t]+(?P<path>[\w.]+)[ \t]*$", re.MULTILINE)


def reference_directives() -> list[str]:
    paths = []
    for page in sorted((DOCS / "api").glob("*.md")):
        paths.extend(m.group("path") for m in _DIRECTIVE.finditer(page.read_text("utf-8")))
    return paths


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(path)


def _home(obj) -> str | None:
    return getattr(obj, "__module__", None) if callable(obj) else None


def _is_private_module(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def documented_by_directives() -> tuple[set[int], set[str]]:
    """``(ids of documented objects, documented module names)`` as the reference renders
    them: a directive on an object documents it; one on a module documents the module and
    the names of its ``__all__`` that live there or in a private module (re-exports of
    another public module are documented on that module's page)."""
    ids, modules = set(), set()
    for path in reference_directives():
        obj = _resolve(path)
        if not isinstance(obj, type(flowlab)):
            ids.add(id(obj))
            continue
        modules.add(obj.__name__)
        for name in getattr(obj, "__all__", ()):
            member = getattr(obj, name)
            home = _home(member)
            if home is None or home == obj.__name__ or _is_private_module(home):
                ids.add(id(member))
    return ids, modules


def test_every_public_name_has_a_reference_directive():
    ids, modules = documented_by_directives()
    missing = []
    for path, obj in public_names().items():
        if isinstance(obj, type(flowlab)):
            if obj.__name__ not in modules:
                missing.append(path)
        elif id(obj) not in ids:
            missing.append(path)
    assert not missing, (
        f"{len(missing)} public name(s) with no `::: ...` entry in docs/api/*.md: "
        + ", ".join(sorted(missing))
    )


# -- the built site ---------------------------------------------------------------------------


def read_inventory(path: Path) -> dict[str, str]:
    """``name -> uri`` of a Sphinx v2 ``objects.inv`` (as mkdocstrings writes it)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    header = raw[:header_end].decode()
    assert header.startswith("# Sphinx inventory version 2"), header
    items = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        match = re.match(
            r"(?P<name>.+?)\s+(?P<type>\S+:\S+)\s+(?P<prio>-?\d+)\s+(?P<uri>\S*)", line
        )
        if match:
            uri = match.group("uri")
            if uri.endswith("$"):
                uri = uri[:-1] + match.group("name")
            items[match.group("name")] = uri
    return items


@pytest.fixture(scope="module")
def site() -> Path:
    path = os.environ.get(SITE_ENV)
    if not path:
        pytest.skip(f"no built site ({SITE_ENV} unset): `nox -s docs` builds and checks it")
    site = Path(path)
    if not site.is_absolute():
        site = ROOT / site
    assert (site / "index.html").exists(), f"{site} holds no built site"
    return site


def check_inventory(site: Path) -> None:
    inventory = read_inventory(site / "objects.inv")
    missing = sorted(name for name in public_names() if name not in inventory)
    assert not missing, (
        f"{len(missing)} public name(s) missing from objects.inv: {', '.join(missing)}"
    )
    ids: dict[Path, set[str]] = {}
    for name in public_names():
        page, _, anchor = inventory[name].partition("#")
        html = site / page / "index.html" if not page.endswith(".html") else site / page
        assert html.exists(), f"{name}: {inventory[name]} points at a missing page"
        if html not in ids:
            ids[html] = set(re.findall(r'id="([^"]+)"', html.read_text(encoding="utf-8")))
        assert anchor in ids[html], f"{name}: no anchor #{anchor} in {html.relative_to(site)}"


class _Assets(HTMLParser):
    """Every URL a page *loads* (not the ones it links to)."""

    LOADS = {
        ("script", "src"),
        ("img", "src"),
        ("iframe", "src"),
        ("source", "src"),
        ("video", "src"),
        ("audio", "src"),
        ("embed", "src"),
        ("object", "data"),
        ("input", "src"),
        ("track", "src"),
    }

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for t, a in self.LOADS:
            if tag == t and attrs.get(a):
                self.urls.append(attrs[a])
        if tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").lower()
            if any(
                r in rel
                for r in (
                    "stylesheet",
                    "icon",
                    "preload",
                    "modulepreload",
                    "manifest",
                    "preconnect",
                    "dns-prefetch",
                )
            ):
                self.urls.append(attrs["href"])
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
_CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)""")


def remote_assets(site: Path) -> list[str]:
    """``file: url`` for every remote resource an HTML page or a stylesheet loads."""
    found = []
    for html in sorted(site.rglob("*.html")):
        parser = _Assets()
        parser.feed(html.read_text(encoding="utf-8"))
        urls = parser.urls + [u for s in parser.styles for u in _CSS_URL.findall(s)]
        found += [f"{html.relative_to(site)}: {u}" for u in urls if _REMOTE.match(u)]
    for css in sorted(site.rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        urls = _CSS_URL.findall(text) + _CSS_IMPORT.findall(text)
        found += [f"{css.relative_to(site)}: {u}" for u in urls if _REMOTE.match(u)]
    return found


def check_offline(site: Path) -> None:
    remote = remote_assets(site)
    assert not remote, "remote assets in the built site:\n" + "\n".join(remote)
    mathjax = site / "assets" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 500_000
    assert len(list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))) >= 20
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        if 'class="arithmatex"' in text:
            assert re.search(r'<script src="[./]*assets/mathjax/tex-chtml\.js"', text), html


def check_pages(site: Path) -> None:
    notebook = (site / "notebooks" / "ode_trajectories" / "index.html").read_text("utf-8")
    assert notebook.count("data:image/png;base64,") >= 5, "the notebook's figures are missing"
    assert "data:image/gif;base64," in notebook, "the notebook's animation is missing"
    for page in ("families/cnf", "families/diffusion", "guides/likelihood-ode", "api/ode"):
        text = (site / page / "index.html").read_text("utf-8")
        assert 'class="arithmatex"' in text, f"{page}: no rendered maths"
    cnf_page = (site / "families" / "cnf" / "index.html").read_text("utf-8")
    figures = re.findall(r'src="\.\./\.\./figures/([^"]+)"', cnf_page)
    assert len(figures) >= 3, "the CNF page shows no committed figures"
    for png in figures:
        assert (site / "figures" / png).exists(), png


def test_site_inventory_lists_every_public_name(site):
    check_inventory(site)


def test_site_is_offline(site):
    check_offline(site)


def test_site_pages(site):
    check_pages(site)


def test_remote_asset_detection(tmp_path):
    """The offline check can fail: it finds a CDN script, font and stylesheet."""
    (tmp_path / "a.html").write_text(
        '<html><head><script src="https://cdn.example/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/f.css">'
        "<style>@font-face{src:url(https://f/x.woff)}</style></head><body>"
        '<a href="https://example.org">a link is fine</a><img src="figures/a.png">'
        "</body></html>"
    )
    (tmp_path / "b.css").write_text("@import 'https://x/y.css'; .a{background:url(img/a.png)}")
    found = remote_assets(tmp_path)
    assert len(found) == 4, found


@pytest.mark.slow
def test_site_build_strict(tmp_path):
    """``mkdocs build --strict`` (warnings are errors) into a scratch directory, then the
    same checks as on CI's site. Needs the docs toolchain (``pip install -e '.[docs]'``)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check_inventory(out)
    check_offline(out)
    check_pages(out)
