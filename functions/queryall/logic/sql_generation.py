"""Question mode: one question becomes one checked SQL query, or a GenerationFailed saying why.

The same steps serve the GenerateSql workflow step and the preview route (POST /query-all/sql): build
the schema context for the targets, reuse SQL generated before for the same question, schema and
generator, else ask the generator once, take exactly one statement from its answer and pass it through
the SQL guard that checks submitted SQL. Nothing is run here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from queryall.dal.sql_cache import SqlCache, cache_key
from queryall.dal.sql_generators import GeneratorFailed, SqlGenerator, build_prompt
from queryall.errors import GenerationFailed
from queryall.logic.schema_context import SchemaContext
from queryall.logic.sql_extraction import ExtractionFailed, extract_sql
from queryall.observability import logger, metrics

# A guard: the checked (normalised) SQL, or SqlRefused with the guard's reason.
SqlCheck = Callable[[str], str]


class SqlRefused(Exception):
    """The SQL guard refused the generated SQL; the message is the guard's reason."""


@dataclass(frozen=True)
class GeneratedSql:
    sql: str
    tables: list[str]
    cached: bool


def tables_named(sql: str, known: list[str]) -> list[str]:
    """The catalog tables `sql` names, in catalog order (words outside string literals; the guard has
    already confined the SQL to plain table names)."""
    code = re.sub(r"'(?:[^']|'')*'", " ", sql)
    words = {(quoted or plain).lower() for quoted, plain in re.findall(r'"((?:[^"]|"")+)"|([A-Za-z_]\w*)', code)}
    return [t for t in known if t.lower() in words]


def generate_sql(
    question: str,
    context: SchemaContext,
    generator: SqlGenerator,
    check: SqlCheck,
    *,
    cache: SqlCache | None,
    now: float,
    cache_ttl_seconds: int,
) -> GeneratedSql:
    if not context.tables:
        raise GenerationFailed("no tenant schema is known for these targets (the table catalog has none yet, "
                               "or no target tenant has the table)")
    key = cache_key(question.strip(), context.version, generator.identity)
    cached = _cached(cache, key, now)
    if cached is not None:
        logger.info("generated SQL reused", extra={"generator": generator.name, "sql": cached[0]})
        metrics.add_metric(name="SqlGenerationCacheHits", unit="Count", value=1)
        return GeneratedSql(cached[0], cached[1], cached=True)

    prompt = build_prompt(question, context.text, context.buckets[0] if context.buckets else None)
    started = time.monotonic()
    try:
        answer = generator.generate(prompt)
    except GeneratorFailed as failure:
        _record(generator.name, started, outcome=failure.reason)
        raise GenerationFailed(failure.reason) from None
    _record(generator.name, started, outcome="answered", input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens)
    try:
        sql = extract_sql(answer.text)
    except ExtractionFailed as failure:
        raise GenerationFailed(str(failure)) from None
    logger.info("SQL generated", extra={"generator": generator.name, "sql": sql})
    try:
        sql = check(sql)
    except SqlRefused as refusal:
        raise GenerationFailed(f"the generated SQL was refused by the SQL guard: {refusal}") from None
    tables = tables_named(sql, context.tables)
    if cache is not None:
        try:
            cache.put(key, sql, tables, int(now) + cache_ttl_seconds)
        except (ClientError, BotoCoreError):
            logger.warning("generated SQL not cached", exc_info=True)
    return GeneratedSql(sql, tables, cached=False)


def _cached(cache: SqlCache | None, key: str, now: float) -> tuple[str, list[str]] | None:
    if cache is None:
        return None
    try:
        return cache.get(key, now)
    except (ClientError, BotoCoreError):
        logger.warning("SQL cache unavailable; asking the generator", exc_info=True)
        return None


def _record(generator: str, started: float, *, outcome: str, input_tokens: int | None = None,
            output_tokens: int | None = None) -> None:
    latency_ms = (time.monotonic() - started) * 1000
    logger.info("SQL generator called", extra={"generator": generator, "latency_ms": round(latency_ms, 1),
                                               "outcome": outcome, "input_tokens": input_tokens,
                                               "output_tokens": output_tokens})
    metrics.add_dimension(name="generator", value=generator)
    metrics.add_metric(name="SqlGenerationLatency", unit="Milliseconds", value=latency_ms)
    if input_tokens is not None:
        metrics.add_metric(name="SqlGenerationInputTokens", unit="Count", value=input_tokens)
    if output_tokens is not None:
        metrics.add_metric(name="SqlGenerationOutputTokens", unit="Count", value=output_tokens)
