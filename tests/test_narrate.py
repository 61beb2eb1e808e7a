"""The notebooks' computed interpretation sentences."""

from __future__ import annotations

from cirlib.viz.narrate import SHOULD_SEE, TAKEAWAYS, difference_text, ranking, ranking_text, should_see, takeaways


def test_ranking_orders_best_first_and_marks_printed_ties():
    values = {"sum": 25.14, "MoE": 61.7, "Combiner": 60.1, "text only": 25.06}
    assert ranking(values) == ["MoE", "Combiner", "sum", "text only"]
    assert ranking_text(values) == "MoE 61.7 > Combiner 60.1 > sum 25.1 = text only 25.1"
    assert ranking_text({"a": 0.3, "b": 0.1}, digits=2, higher_is_better=False) == "b 0.10 < a 0.30"


def test_difference_text_says_more_less_or_the_same_at_the_printed_precision():
    assert difference_text(39.2, 36.0) == "3.2 points more"
    assert difference_text(36.0, 39.24) == "3.2 points less"
    assert difference_text(36.04, 36.0) == "the same"
    assert difference_text(0.5, 0.25, unit="s", digits=2) == "0.25 s more"


def test_should_see_and_takeaways_render_markdown():
    cell = should_see("""
        The MoE wins
        by 3 points.""")
    assert cell.data == f"{SHOULD_SEE} The MoE wins\nby 3 points."
    assert takeaways(["first", "  second"]).data == f"{TAKEAWAYS}\n\n- first\n- second"
