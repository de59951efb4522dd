"""Exactly one SQL statement out of a generator's answer: fenced or bare, with any prose around it dropped.

What the statement may do is not judged here: the SQL guard checks it as it checks submitted SQL (a
`DELETE` is extracted, then refused there with the guard's reason). Here the only failures are an answer
with no SQL at all and an answer with more than one statement.
"""

from __future__ import annotations

import re

# A statement starts with one of these (DuckDB's statement keywords), written all upper or all lower
# case: a sentence that starts with one ("Use this query:", "From the schema…") is capitalised.
_KEYWORDS = (
    "SELECT", "WITH", "FROM", "VALUES", "TABLE", "PIVOT", "UNPIVOT", "DESCRIBE", "SHOW", "SUMMARIZE",
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "ATTACH", "DETACH", "COPY",
    "EXPORT", "IMPORT", "SET", "RESET", "USE", "PRAGMA", "CALL", "INSTALL", "LOAD", "EXPLAIN", "CHECKPOINT",
    "VACUUM", "ANALYZE", "BEGIN", "COMMIT", "ROLLBACK", "PREPARE", "EXECUTE", "GRANT",
)
_FIRST_WORD = re.compile(r"^\s*\(*\s*([A-Za-z]+)\b")
# A query introduced inside a sentence ("Here it is: SELECT …"): upper-case SELECT or WITH only.
_INLINE_START = re.compile(r"\b(?:SELECT|WITH)\b")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_NO_SQL_ANSWER = re.compile(r"^\W*no\s+sql\W*$", re.IGNORECASE)
# Reasoning models (DeepSeek-R1, Qwen3…) think aloud before answering; that is not the answer.
_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)


def _starts_statement(line: str) -> bool:
    match = _FIRST_WORD.match(line)
    word = match.group(1) if match else ""
    return word.upper() in _KEYWORDS and (word.isupper() or word.islower())


class ExtractionFailed(ValueError):
    """The answer holds no SQL, or several statements; the message says which."""


def split_statements(sql: str) -> list[str]:
    """The non-empty statements of `sql`, split on semicolons outside strings, quoted names and comments."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # a doubled quote stays inside
                        end += 2
                        continue
                    break
                end += 1
            current.append(sql[i:end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            current.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            current.append(sql[i:end])
            i = end
        elif ch == "$" and (match := re.match(r"\$([A-Za-z_]*)\$", sql[i:])):
            tag = match.group(0)
            end = sql.find(tag, i + len(tag))
            end = n if end == -1 else end + len(tag)
            current.append(sql[i:end])
            i = end
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(text: str) -> bool:
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    return without_comments.strip() != ""


def _bare_sql(answer: str) -> list[str]:
    """The SQL of an answer without fences: from the first line that starts a statement to its end (a
    line ending in ';', or a blank line), plus any later line that starts another statement (so that a
    second statement is seen and refused); prose around it is dropped."""
    lines = answer.splitlines()
    start = next((i for i, line in enumerate(lines) if _starts_statement(line)), None)
    if start is None:
        for i, line in enumerate(lines):
            if match := _INLINE_START.search(line):
                lines = [*lines[:i], line[match.start():], *lines[i + 1:]]
                start = i
                break
    if start is None:
        return []
    pieces: list[list[str]] = [[]]
    in_statement = True
    for line in lines[start:]:
        if not in_statement and _starts_statement(line):
            pieces.append([])
            in_statement = True
        if in_statement:
            if not line.strip():
                in_statement = False
                continue
            pieces[-1].append(line)
            in_statement = not line.rstrip().endswith(";")
    return ["\n".join(piece) for piece in pieces]


def extract_sql(answer: str) -> str:
    """The one SQL statement in `answer`, without a trailing semicolon."""
    text = _THINKING.sub("", answer).strip()
    if not text or _NO_SQL_ANSWER.match(text):
        raise ExtractionFailed("the answer held no SQL")
    fenced = [body for _lang, body in _FENCE.findall(text) if _has_code(body)]
    pieces = fenced if fenced else _bare_sql(text.replace("`", "") if "```" not in text else text)
    statements = [s for piece in pieces for s in split_statements(piece)]
    if not statements:
        raise ExtractionFailed("the answer held no SQL")
    if len(statements) > 1:
        raise ExtractionFailed(f"the answer held {len(statements)} SQL statements, not one")
    return statements[0]
