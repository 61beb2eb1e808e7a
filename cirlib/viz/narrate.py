"""Sentences for the notebooks' "What you should see" cells, built from the numbers a cell just printed.

A notebook states what a result shows and why right after it; where the observation depends on the
numbers (which method wins, by how much, at which epoch), the sentence is computed here, so the text
can never disagree with the table above it, on the small benchmark or the medium one.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping

from IPython.display import Markdown

SHOULD_SEE = "**What you should see.**"
TAKEAWAYS = "### What to take away"


def should_see(text: str) -> Markdown:
    """The interpretation cell's output: ``text`` (markdown, dedented) after a bold "What you should see."."""
    return Markdown(f"{SHOULD_SEE} {textwrap.dedent(text).strip()}")


def takeaways(points: Iterable[str]) -> Markdown:
    """A notebook's closing summary: a heading and one bullet per conclusion."""
    bullets = "\n".join(f"- {textwrap.dedent(point).strip()}" for point in points)
    return Markdown(f"{TAKEAWAYS}\n\n{bullets}")


def ranking(values: Mapping[str, float], higher_is_better: bool = True) -> list[str]:
    """The names ordered best first (ties keep the mapping's order)."""
    return sorted(values, key=lambda name: -values[name] if higher_is_better else values[name])


def ranking_text(values: Mapping[str, float], digits: int = 1, higher_is_better: bool = True) -> str:
    """"MoE 61.7 > Combiner 60.1 > sum 25.1": the values best first, "=" where they print the same."""
    order = ranking(values, higher_is_better)
    text = f"{order[0]} {values[order[0]]:.{digits}f}"
    for before, name in zip(order, order[1:]):
        same = f"{values[before]:.{digits}f}" == f"{values[name]:.{digits}f}"
        text += f" {'=' if same else '>' if higher_is_better else '<'} {name} {values[name]:.{digits}f}"
    return text


def difference_text(value: float, other: float, unit: str = "points", digits: int = 1) -> str:
    """"3.2 points more", "0.4 points less" or "the same" (to ``digits``): how ``value`` compares with ``other``."""
    gap = round(value - other, digits)
    if gap == 0:
        return "the same"
    return f"{abs(gap):.{digits}f} {unit} {'more' if gap > 0 else 'less'}"
