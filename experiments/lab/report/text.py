"""Numbers into words and prose into Typst: number formatting, Typst escaping with
citations and cross-references, and the fixed text on the datasets (a family's label and
text live in its entry of :mod:`lab.registry`)."""

from __future__ import annotations

import math
import re


def num(v: float, digits: int = 3, *, sign: bool = False) -> str:
    """A number with a typographic minus (``n/a`` when not finite; scientific notation from
    10⁴ on)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) >= 1e4:
        return ("+" if sign and v > 0 else "") + sci(v, 2)
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return s.replace("-", "−")


def pm(v: float, se: float, digits: int = 3) -> str:
    """``value ± se`` (just the value when the error is unknown)."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if se is None or not math.isfinite(se):
        return num(v, digits)
    if 0 < max(abs(v), abs(se)) < 10.0 ** -(digits - 1) / 2:  # would print as 0.00x ± 0.000
        return f"{sci(v)} ± {sci(se)}"
    return f"{num(v, digits)} ± {num(se, digits)}"


def sci(v: float, digits: int = 1) -> str:
    """A small positive number in scientific notation with a Unicode exponent."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    e = int(math.floor(math.log10(abs(v))))
    m = v / 10**e
    if round(abs(m), digits) >= 10:
        e, m = e + 1, m / 10
    sup = str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{m:.{digits}f}×10{sup}".replace("-", "−")


_CODE_SUB = re.compile(r"\bL_(\w+)")


def words(label: str) -> str:
    """A label as prose: no code names or literal underscores ("DDPM (L_simple)" becomes
    "DDPM (simple loss)", "gaussian_mixture" becomes "gaussian mixture")."""
    s = _CODE_SUB.sub(lambda m: f"{m.group(1)} loss", str(label))
    return s.replace("_", " ")


def measure_value(col: str, v: float, se: float | None = None) -> str:
    """A value of a measure as the evidence tables print it and the prose quotes it (energy
    distance in scientific notation, Bhattacharyya with four decimals, the rest three)."""
    if col == "energy":
        if v is None or not math.isfinite(v):
            return "n/a"
        s = sci(v, 2)
        if se is not None and math.isfinite(se):
            s += f" ± {sci(se, 1)}"
        return s
    digits = 4 if col == "bhattacharyya" else 3
    if se is None or not math.isfinite(se):
        return num(v, digits)
    return f"{num(v, digits)} ± {num(se, digits)}"


def join(items: list[str]) -> str:
    """``a, b and c`` (``a; b and c`` when an item has a comma of its own)."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    sep = "; " if any("," in i for i in items) else ", "
    return sep.join(items[:-1]) + " and " + items[-1]


def cap(s: str) -> str:
    """``s`` with its first letter upper-case (a sentence that starts with a label)."""
    return s[:1].upper() + s[1:]


def pct(v: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(v) else f"{100 * v:.{digits}f}%"


DATASET_TEXT = {
    "spiral": "a one-armed spiral (three turns) blurred by Gaussian noise of std 0.04",
    "pinwheel": "three curved arms of a pinwheel (angular noise 0.2, radius below 1)",
    "checkerboard": "uniform density on the 8 black squares of a 4×4 checkerboard "
    "(density 1/32 on its support, zero elsewhere: sharp edges)",
    "gaussian_mixture": "7 isotropic Gaussians of std 0.12 on a circle of radius 1.2",
}


CITE_TEXT = {
    "ho2020": "Ho et al. 2020",
    "song2021ddim": "Song et al. 2021a",
    "song2021sde": "Song et al. 2021b",
    "lipman2023": "Lipman et al. 2023",
    "grathwohl2019": "Grathwohl et al. 2019",
    "kingma2014": "Kingma & Welling 2014",
    "burda2016": "Burda et al. 2016",
    "goodfellow2014": "Goodfellow et al. 2014",
    "du2019": "Du & Mordatch 2019",
    "song2021ebm": "Song & Kingma 2021",
    "singh2023": "Singh et al. 2023",
    "scott1992": "Scott 1992",
    "silverman1986": "Silverman 1986",
    "szekely2013": "Székely & Rizzo 2013",
}


_REF = re.compile(r"\[@([\w:-]+)\]")
_SUB = re.compile(r"(?<=\w)~(\w+)~")
_TYPST_SPECIAL = re.compile(r"([\\#$*_@<>`\[\]~=])")


def esc(s: str) -> str:
    """Plain text as Typst markup: special characters escaped, ``//`` kept literal, and
    ``'`` set as an apostrophe (Typst's smart quotes would open a quote after ``)``)."""
    s = _TYPST_SPECIAL.sub(r"\\\1", str(s).replace("'", "’"))
    return s.replace("//", "/\\/").replace("/*", "/\\*")


def typst_text(s: str) -> str:
    """Generated prose to Typst: escaped, with ``[@key]`` turned into a citation or a
    reference (``fig:``/``tab:``/``sec:`` labels)."""
    out, pos = [], 0
    for m in _REF.finditer(s):
        out.append(_subscripts(s[pos : m.start()]))
        out.append(f"@{m.group(1)}")
        pos = m.end()
    out.append(_subscripts(s[pos:]))
    return "".join(out)


def _subscripts(s: str) -> str:
    """Escaped text with ``L~D~`` set as L with subscript D."""
    out, pos = [], 0
    for m in _SUB.finditer(s):
        out.append(esc(s[pos : m.start()]))
        out.append(f"#sub[{esc(m.group(1))}]")
        pos = m.end()
    out.append(esc(s[pos:]))
    return "".join(out)


def plain_text(s: str) -> str:
    """Generated prose as plain text (citations as author and year)."""

    def repl(m):
        key = m.group(1)
        if ":" in key:
            return {"fig": "the figure", "tab": "the table", "sec": "the section"}[
                key.split(":")[0]
            ]
        return f"({CITE_TEXT.get(key, key)})"

    return _SUB.sub(r"<sub>\1</sub>", _REF.sub(repl, s))


class Markup:
    """Typst markup written block by block: paragraphs of generated prose, headings, and
    blocks written elsewhere (tables, figures), each followed by a blank line."""

    def __init__(self, *lines: str):
        self.lines = list(lines)

    def para(self, text: str, lead: str | None = None) -> None:
        """A paragraph of generated prose, after a bold ``lead`` when given."""
        self.lines.append((f"*{esc(lead)}* " if lead else "") + typst_text(text))
        self.lines.append("")

    def heading(self, text: str, level: int = 1, label: str | None = None) -> None:
        self.lines.append("=" * level + " " + esc(text) + (f" <{label}>" if label else ""))
        self.lines.append("")

    def block(self, markup: str) -> None:
        """Markup written elsewhere (a table, a figure), then a blank line."""
        self.lines.append(markup)
        self.lines.append("")
