"""The one table formatter: rows of already-formatted cells as markdown (READMEs, results files) or as fixed-width
text (terminals). Callers format their numbers (``f"{v:.1f}"``, "mean ± std"); this module only lays cells out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> str:
    """``| a | b |`` lines with a ``|---|`` rule under the header; ``title`` (if any) above, then a blank line."""
    lines = [] if title is None else [title, ""]
    lines += ["| " + " | ".join(map(str, header)) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> str:
    """Fixed-width columns, each as wide as its longest cell plus two: the first left-aligned, the rest right."""
    cells = [list(map(str, header)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) + 2 for i in range(len(header))]
    lines = [] if title is None else [title]
    lines += [row[0].ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(row[1:], widths[1:])) for row in cells]
    return "\n".join(lines)
