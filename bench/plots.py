"""Plots of the tables the bench scripts print: one grouped bar chart per table (matplotlib, which MLflow
installs).

Every bench script prints its results as a Markdown table; this module draws such a table. Two ways in:

- a bench script run with ``--plot FILE.png`` draws the tables it just printed (``captured``);
- ``python bench/plots.py docs/performance.md`` redraws every table of a page that carries a marker
  ``<!-- plot: NAME.png columns="median;best" title="..." -->`` (columns by header, ``;`` between)
  before it, into ``docs/plots/``: the pictures of the numbers the page records, by the same code.

A cell may hold more than a number (``9.03 / 4.75``, ``10.35 (6.02)``, ``1,354.8``): its first number
is drawn. Rows are labelled by the cells before the first column drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

MARKER = re.compile(
    r'^<!-- plot: (?P<file>[\w.-]+\.png)(?: columns="(?P<columns>[^"]*)")?(?: title="(?P<title>[^"]*)")? -->$'
)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def parse_table(lines: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first Markdown table in ``lines``."""
    rows = []
    for line in lines:
        if line.lstrip().startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    if len(rows) < 3:
        raise ValueError("no Markdown table (a header, a separator and rows) found")
    return rows[0], [row for row in rows[2:] if len(row) == len(rows[0])]


def number(cell: str) -> float | None:
    """The first number of a cell (``1,354.8`` -> 1354.8), or None."""
    found = NUMBER.search(cell.replace("**", ""))
    return float(found.group().replace(",", "")) if found else None


def plot_table(header: Sequence[str], rows: Sequence[Sequence[str]], path: Path, columns=None, title="") -> Path:
    """A horizontal grouped bar chart of ``columns`` (default: every numeric one), one group per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [i for i, name in enumerate(header) if i and all(number(row[i]) is not None for row in rows)]
    chosen = [header.index(name) for name in columns] if columns else numeric
    leading = [i for i in range(min(chosen)) if i not in numeric]  # the text cells before the first drawn
    labels = [", ".join(row[i].replace("`", "").strip("*") for i in leading) for row in rows]
    height = 0.8 / len(chosen)
    figure, axes = plt.subplots(figsize=(9, 1.0 + 0.45 * len(rows) * max(1, len(chosen) / 1.5)))
    for k, column in enumerate(chosen):
        values = [number(row[column]) for row in rows]
        positions = [i + k * height for i in range(len(rows))]
        bars = axes.barh(positions, values, height=height, label=header[column])
        axes.bar_label(bars, labels=[f"{v:,.3g}" for v in values], padding=3, fontsize=8)
    axes.set_yticks([i + height * (len(chosen) - 1) / 2 for i in range(len(rows))], labels, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, axes.get_xlim()[1] * 1.1)  # room for the value labels
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(chosen), frameon=False)
    axes.set_title(title, fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def tables(lines: Sequence[str]) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table in ``lines``, in order."""
    found, start = [], 0
    while start < len(lines):
        first = next((i for i in range(start, len(lines)) if lines[i].lstrip().startswith("|")), None)
        if first is None:
            break
        end = next((i for i in range(first, len(lines)) if not lines[i].lstrip().startswith("|")), len(lines))
        found.append(parse_table(lines[first:end]))
        start = end
    return found


@contextlib.contextmanager
def captured(plot: str | None, *charts: tuple[str, list[str] | None]) -> Iterator[None]:
    """Within the block, what is printed is also kept; at its end, with ``plot`` (a bench script's
    ``--plot FILE.png``), the tables printed are drawn: the k-th by ``charts[k]`` (a title and the
    columns to draw, None for every numeric one), into ``FILE.png``, then ``FILE-2.png``, ..."""
    if plot is None:
        yield
        return
    kept = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            kept.write(text)
            return sys.__stdout__.write(text)

    with contextlib.redirect_stdout(Tee()):
        yield
    path = Path(plot)
    printed = tables(kept.getvalue().splitlines())[: len(charts)]
    for k, ((header, rows), (title, columns)) in enumerate(zip(printed, charts[: len(printed)], strict=True)):
        target = path if k == 0 else path.with_name(f"{path.stem}-{k + 1}{path.suffix}")
        print(f"wrote {plot_table(header, rows, target, columns, title)}")


PLOT_HELP = "also draw the printed table(s) as a bar chart into this PNG (bench/plots.py)"


def plot_page(page: Path, out: Path) -> list[Path]:
    """Every table of ``page`` that carries a plot marker, drawn into ``out``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    made = []
    for number_, line in enumerate(lines):
        marker = MARKER.match(line.strip())
        if marker:
            header, rows = parse_table(lines[number_ + 1 :])
            columns = [c.strip() for c in marker["columns"].split(";")] if marker["columns"] else None
            made.append(plot_table(header, rows, out / marker["file"], columns, marker["title"] or ""))
    return made


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path, help="Markdown pages with plot markers")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "plots")
    args = parser.parse_args(argv)
    for page in args.pages:
        for path in plot_page(page, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
