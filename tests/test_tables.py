"""The one table formatter lays out given cells exactly: markdown rules and fixed-width alignment."""

from cirlib.util.tables import markdown_table, text_table


def test_markdown_table_has_a_rule_per_column_and_the_title_above():
    table = markdown_table(["method", "R@1"], [["sum", "12.5"], ["Combiner", 30]], title="cirr (val)")
    assert table.splitlines() == ["cirr (val)", "", "| method | R@1 |", "|---|---|", "| sum | 12.5 |",
                                  "| Combiner | 30 |"]
    assert markdown_table(["a"], []).splitlines() == ["| a |", "|---|"]


def test_text_table_aligns_the_first_column_left_and_numbers_right():
    lines = text_table(["method", "R@10"], [["sum", "9.50"], ["Combiner", "41.25"]], title="t").splitlines()
    assert lines == ["t", "method       R@10", "sum          9.50", "Combiner    41.25"]
    assert len({len(line) for line in lines[1:]}) == 1
