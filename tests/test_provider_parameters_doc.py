"""``docs/provider-parameters.md`` says what the adapters' parameter tables do."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.anthropic import ANTHROPIC_PARAMS
from adapters.gemini import GEMINI_PARAMS

DOC = Path(__file__).resolve().parent.parent / "docs" / "provider-parameters.md"


def chat_rows() -> dict[str, list[str]]:
    rows = {}
    lines = DOC.read_text().splitlines()
    start = lines.index("| parameter | openai | custom | anthropic | gemini |")
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_table_parameter_has_a_row_and_no_more():
    assert set(chat_rows()) == set(ANTHROPIC_PARAMS) | set(GEMINI_PARAMS)


@pytest.mark.parametrize("column,table", [(2, ANTHROPIC_PARAMS), (3, GEMINI_PARAMS)], ids=["anthropic", "gemini"])
def test_each_cell_names_how_the_table_handles_it(column, table):
    for name, cells in chat_rows().items():
        rule = table[name]
        assert cells[column].startswith(rule.handling.value), f"{name}: doc says {cells[column]!r}, table says {rule.handling.value}"
        if rule.to:
            assert f"`{rule.to}`" in cells[column], name
