"""One jinja2 Environment (autoescape on, small ``fmt_*`` filters) renders the context from
``build`` into one self-contained HTML file; WeasyPrint prints the same HTML to PDF with the
print rules of ``templates/report.css`` (page numbers, contents with page numbers). The same
context gives the same bytes: WeasyPrint writes no date unless the HTML names one, and links
to the tables stay relative (no base URL), so the PDF names no folder of this machine."""

import math
from numbers import Integral, Real
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from report.cited import write_tables
from report.numbers import fixed, percent, significant
from report.tables import Interval

TEMPLATES = Path(__file__).resolve().parent / "templates"


def fmt_num(value, digits: int = 4) -> str:
    """A number for reading: 4 significant digits (exact decimal rounding: report/numbers.py),
    "-" for null, "n.r." (not reached) for +inf."""
    if isinstance(value, Interval):
        return fmt_ci(*value)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, Integral):
        return str(value)
    if isinstance(value, Real):
        return "n.r." if value == math.inf else significant(value, digits)
    return str(value)


def fmt_ci(lo, hi) -> str:
    """A 95% interval as "[lo, hi]"; "no CI" when undefined (one value), "n.r." when both are
    not reached."""
    if lo is None or pd.isna(lo):
        return "no CI"
    return "n.r." if lo == math.inf else f"[{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]"


def fmt_points(interval) -> str:
    """An interval of accuracy (fractions) in points with signs: "[-1.23, +0.45]"."""
    lo, hi = (fixed(100 * v, 2, sign=True) for v in interval)
    return f"[{lo}, {hi}]"


def fmt_pct(value, digits: int = 0) -> str:
    """A probability as a percentage: 0.363 -> "36%"."""
    return percent(float(value), digits)


VERDICT_CLASS = {  # a verdict's colour: the best and those that may be it green, worse red
    "best": "best", "possibly best": "possibly", "within the margin of the best": "within",
    "worse by less than the margin": "worse-within", "worse": "worse",
    "worse beyond the margin": "worse",
    "fastest": "best", "possibly fastest": "possibly", "slower": "worse",
}  # fmt: skip


def verdict_class(word: str) -> str:
    """The CSS class of a verdict's colour ("na" for none, n/a and -)."""
    return VERDICT_CLASS.get(word, "na")


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every name comes from records: a schedule may be called "<b>"
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters |= {
    "fmt_num": fmt_num,
    "fmt_ci": fmt_ci,
    "fmt_pct": fmt_pct,
    "verdict_class": verdict_class,
    "fmt_points": fmt_points,
}


def html(context: dict) -> str:
    css = (TEMPLATES / "report.css").read_text()
    return ENV.get_template("report.html.j2").render(css=css, **context)


def write(context: dict, folder: Path) -> dict[str, Path]:
    """index.html, report.pdf, and tables/<ID>.csv|.md|.tex with an index.md naming them, in
    ``folder`` (tables of an earlier report are removed: their IDs are not this one's)."""
    from weasyprint import HTML  # imported here: it takes ~1 s and only printing needs it

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": folder / "index.html",
        "pdf": folder / "report.pdf",
        "tables": folder / "tables",
    }
    write_tables(context["tables"], paths["tables"])
    text = html(context)
    paths["html"].write_text(text)
    HTML(string=text).write_pdf(paths["pdf"])  # no base URL: links stay relative, no path
    return paths
