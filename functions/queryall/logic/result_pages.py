"""Rows of the full result as responses: pages read from its Arrow IPC file in S3, rendered as JSON rows
(the same text the job item holds for the same row) or as a base64 Arrow IPC stream, each cut to what a
response can carry. Loads pyarrow and duckdb: only the results route and ``format=arrow`` come here.
"""

from __future__ import annotations

import base64
import json

import pyarrow as pa
import pyarrow.compute as pc

from queryall.errors import InvalidRequest, ResponseTooLarge
from queryall.logic.combined_result import ipc_stream
from queryall.logic.item_fit import largest_prefix
from queryall.logic.json_rows import table_to_json_rows
from queryall.logic.paging import next_cursor
from queryall.logic.response_size import LINKS_RESERVE, RESPONSE_BUDGET, escaped_lengths, escaped_size
from queryall.logic.result_export import ARROW_BATCH_ROWS
from queryall.logic.result_links import ResultLinks, completed_meta, sql_member
from queryall.models.job import Job
from queryall.models.result_format import ResultFormat

# Rows rendered to JSON at a time while filling a response.
RENDER_CHUNK_ROWS = 20_000
# Bytes fetched with the footer of result.arrow: a footer lists 24 bytes per batch plus the schema.
_FOOTER_BASE = 64 * 1024
_FOOTER_PER_BATCH = 32
_FOOTER_PER_COLUMN = 512


def rows_within(table: pa.Table, budget: int) -> list[str]:
    """JSON text of the first rows of ``table`` whose ``[row,row,...]`` takes at most ``budget`` escaped
    bytes in a response; rendering stops there however large the table is."""
    texts: list[str] = []
    remaining = budget - 1  # the opening bracket; each row then brings its comma or the closing bracket
    for start in range(0, table.num_rows, RENDER_CHUNK_ROWS):
        chunk = table_to_json_rows(table.slice(start, RENDER_CHUNK_ROWS))
        sizes = pc.add(escaped_lengths(pa.array(chunk, pa.large_string())), 1)
        fitting = largest_prefix(sizes, remaining)
        texts.extend(chunk[:fitting])
        if fitting < len(chunk):
            break
        remaining -= pc.sum(sizes).as_py()
    return texts


def arrow_within(table: pa.Table, budget: int) -> tuple[str, int]:
    """Base64 of an Arrow IPC stream of the first rows of ``table`` that takes at most ``budget`` bytes, and
    how many rows it holds (found by bisection on whole encodings; rarely needed)."""

    def encoded(rows: int) -> str:
        return base64.b64encode(ipc_stream(table.slice(0, rows))).decode("ascii")

    text = encoded(table.num_rows)
    if len(text) <= budget:
        return text, table.num_rows
    lo, lo_text, hi = 0, encoded(0), table.num_rows
    while hi - lo > 1:
        middle = (lo + hi) // 2
        candidate = encoded(middle)
        if len(candidate) <= budget:
            lo, lo_text = middle, candidate
        else:
            hi = middle
    return lo_text, lo


def read_rows(links: ResultLinks, job: Job, total_rows: int, columns: int, offset: int, count: int) -> pa.Table:
    """Rows ``offset .. offset + count`` of the job's full result: two ranged GETs of result.arrow (its
    footer, then the batches holding those rows) as long as the read-ahead estimate covers them."""
    batches = -(-total_rows // ARROW_BATCH_ROWS)
    source = links.store.open(job.job_id, ResultFormat.ARROW,
                              _FOOTER_BASE + _FOOTER_PER_BATCH * batches + _FOOTER_PER_COLUMN * columns)
    reader = pa.ipc.open_file(pa.PythonFile(source, mode="r"))
    if count == 0:
        return reader.schema.empty_table()
    first, last = offset // ARROW_BATCH_ROWS, (offset + count - 1) // ARROW_BATCH_ROWS
    # Batches are alike in size on average: fetch about what these should take, in one request.
    source.read_ahead = int(source.size / batches * (last - first + 1) * 1.25) + _FOOTER_BASE
    table = pa.Table.from_batches([reader.get_batch(i) for i in range(first, last + 1)], schema=reader.schema)
    return table.slice(offset - first * ARROW_BATCH_ROWS, count)


def _arrow_data(job: Job, meta: dict, result: str) -> str:
    summary = {"sql": job.request.sql, "total_rows": meta["total_rows"],
               "execution_time_ms": round(meta["execution_time_seconds"] * 1000)}
    return json.dumps({"result": result, "summary": summary}, separators=(",", ":"), ensure_ascii=False)


def _body(data: str, meta: dict) -> str:
    return f'{{"data":{data},"meta":{json.dumps(meta, separators=(",", ":"), ensure_ascii=False)}}}'


def _budget(data_without_rows: str, meta: dict) -> int:
    return RESPONSE_BUDGET - LINKS_RESERVE - escaped_size(_body(data_without_rows, meta))


def arrow_poll_body(job: Job, links: ResultLinks) -> str:
    """Poll with format=arrow: the rows the JSON poll response holds, as Arrow (fewer if they do not fit)."""
    meta = completed_meta(job, ResultFormat.ARROW, links)
    columns = len(meta["schema"])
    table = read_rows(links, job, meta["total_rows"], columns, 0, meta["returned_rows"])
    result, returned = arrow_within(table, _budget(_arrow_data(job, meta, ""), meta))
    meta = completed_meta(job, ResultFormat.ARROW, links, returned)
    return _body(_arrow_data(job, meta, result), meta)


def results_page_body(
    job: Job, links: ResultLinks, offset: int, page_size: int, result_format: ResultFormat
) -> str:
    """One page of the full result from ``offset``: at most ``page_size`` rows, fewer when they would make
    the response too large. ``next_cursor`` continues after the last row returned."""
    stored = json.loads(job.meta or "{}")
    total = stored["total_rows"]
    if offset > total:
        raise InvalidRequest("cursor is past the end of the result")
    table = read_rows(links, job, total, len(stored["schema"]), offset, min(page_size, total - offset))
    meta = {"schema": stored["schema"], "total_rows": total, "offset": offset,
            "returned_rows": table.num_rows, "truncated": True, "next_cursor": None,
            "result_url": links.url(job, result_format)}
    if result_format is ResultFormat.ARROW:
        result, returned = arrow_within(table, _budget(_arrow_data(job, stored, ""), meta))
        data = _arrow_data(job, stored, result)
    else:
        rows = rows_within(table, _budget(f'{{"columns":{job.columns},"rows":[]{sql_member(job)}}}', meta) + 2)
        returned = len(rows)
        data = f'{{"columns":{job.columns},"rows":[{",".join(rows)}]{sql_member(job)}}}'
    if returned == 0 and table.num_rows:
        raise ResponseTooLarge(
            f"Row {offset} alone is larger than a response can carry; download the full result from meta.result_url "
            f"of GET /query-all/jobs/{job.job_id}?format=parquet"
        )
    meta.update(returned_rows=returned, truncated=returned < total,
                next_cursor=next_cursor(job.job_id, offset, returned, total))
    return _body(data, meta)
