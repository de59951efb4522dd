"""One SQL statement out of a generator's answer, and the versioned prompt file."""

from __future__ import annotations

import pytest

from queryall.dal.sql_generators import PROMPT_FILE, build_prompt
from queryall.logic.sql_extraction import ExtractionFailed, extract_sql

SQL = "SELECT currency, sum(amount) AS total FROM payment GROUP BY ALL"


@pytest.mark.parametrize("answer", [
    SQL,
    f"{SQL};",
    f"  \n{SQL};\n\n",
    f"```sql\n{SQL}\n```",
    f"```SQL\n{SQL};\n```",
    f"```\n{SQL}\n```",
    f"Here is the query:\n```sql\n{SQL}\n```\nIt sums payments per currency.",
    f"Sure! Here it is:\n\n{SQL};\n\nThis groups by currency.",
    f"The answer is {SQL}",
    f"`{SQL}`",
    "SELECT currency,\n       sum(amount) AS total\nFROM payment\nGROUP BY ALL",
    f"Use this query:\n{SQL};\nIt sums payments per currency.",
    f"From the schema, payments have a currency.\nWith that:\n\n{SQL}\n\nShow it as a table.",
    f"<think>\nThe user wants totals. SELECT * FROM person would be wrong.\n```sql\nSELECT 1\n```\n</think>\n{SQL}",
    f"<think>From payment, group by currency.</think>\n\n```sql\n{SQL}\n```",
    SQL.lower(),
])
def test_one_statement_is_found_in_any_shape(answer: str) -> None:
    assert " ".join(extract_sql(answer).split()).lower() == SQL.lower()


def test_semicolons_in_strings_and_comments_do_not_split() -> None:
    sql = "SELECT 'a;b' AS s, \"x;y\" -- trailing; comment\nFROM t /* c; d */"
    assert extract_sql(f"```sql\n{sql};\n```") == sql


def test_write_statements_are_extracted_for_the_guard_to_refuse() -> None:
    assert extract_sql("```sql\nDELETE FROM person\n```") == "DELETE FROM person"
    assert extract_sql("DROP TABLE person;") == "DROP TABLE person"


@pytest.mark.parametrize("answer", [
    "SELECT 1; SELECT 2",
    "SELECT 1;\nDELETE FROM person;",
    "```sql\nSELECT 1;\n\nDELETE FROM person;\n```",
    "```sql\nSELECT 1\n```\nor\n```sql\nSELECT 2\n```",
    "SELECT 1;\n\nDELETE FROM person;",
])
def test_two_statements_fail(answer: str) -> None:
    with pytest.raises(ExtractionFailed, match="2 SQL statements, not one"):
        extract_sql(answer)


@pytest.mark.parametrize("answer", ["", "   \n", "NO SQL", "no sql.", "I cannot answer that from this schema.",
                                    "```sql\n-- nothing\n```", ";;"])
def test_no_sql_fails(answer: str) -> None:
    with pytest.raises(ExtractionFailed, match="no SQL"):
        extract_sql(answer)


def test_the_prompt_file_loads_and_fills_in() -> None:
    assert PROMPT_FILE.name == "sql_generation.v1.txt" and PROMPT_FILE.is_file()
    prompt = build_prompt("  total payments by currency?  ", "TABLE payment  -- in 3 of 3 tenants\n  amount DOUBLE\n",
                          "acme")
    assert "one read-only SELECT" in prompt.system and "{" not in prompt.system
    assert "TABLE payment  -- in 3 of 3 tenants\n  amount DOUBLE" in prompt.user
    assert prompt.user.endswith("Question: total payments by currency?")
    assert prompt.question == "total payments by currency?" and prompt.first_bucket == "acme"
