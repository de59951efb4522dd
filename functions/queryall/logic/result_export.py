"""Writing the full result once, in every format callers can download or page through.

* ``result.arrow``: Arrow IPC *file* of the merged table in record batches of exactly ARROW_BATCH_ROWS
  rows (the last may be shorter). It is the ``format=arrow`` download and what the results pages read:
  the footer lists where each batch starts, so a page costs a ranged GET of the footer and one of the
  batches it spans, however large the result. One object serves downloads and pages alike (no per-page
  objects to write, and nothing to keep in step).
* ``result.parquet`` and ``result.csv``: written by DuckDB (see ``json_rows.write_parquet`` /
  ``write_csv`` for the CSV text of each type). Their writers make repeated column names unique
  (``a``, ``a_1``).
* ``result.json``: ``{"columns": [...], "rows": [...]}``, rows rendered like every JSON response.

A small result (the common case, where the caller waits on orchestration, not data) has its four files
written and uploaded at once, each in its own thread: four S3 round trips in the time of one. A larger
one is written a file at a time to the function's temporary storage and uploaded, so the disk holds at
most one of them.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from queryall.dal.result_files import ResultStore
from queryall.logic.json_rows import table_to_json_rows, write_csv, write_parquet

ARROW_BATCH_ROWS = 1000
# Rows rendered to JSON at a time while writing result.json.
JSON_CHUNK_ROWS = 50_000
# Results of at most this many bytes (in Arrow memory) have their files written concurrently.
CONCURRENT_EXPORT_BYTES = 16 * 1024 * 1024


def write_arrow_file(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for start in range(0, table.num_rows, ARROW_BATCH_ROWS):
            # One batch per slice, whatever chunks the slice spans, so batch i starts at row i * ARROW_BATCH_ROWS.
            writer.write_batch(table.slice(start, ARROW_BATCH_ROWS).combine_chunks().to_batches()[0])


def write_json_file(table: pa.Table, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"columns":' + json.dumps(table.column_names, separators=(",", ":"), ensure_ascii=False))
        out.write(',"rows":[')
        for start in range(0, table.num_rows, JSON_CHUNK_ROWS):
            out.write(("," if start else "") + ",".join(table_to_json_rows(table.slice(start, JSON_CHUNK_ROWS))))
        out.write("]}")


_WRITERS = {
    "arrow": write_arrow_file,
    "parquet": lambda table, path: write_parquet(table, str(path)),
    "csv": lambda table, path: write_csv(table, str(path)),
    "json": write_json_file,
}


def export_result(table: pa.Table, store: ResultStore, job_id: str) -> None:
    """Write ``table`` in every format under the job's prefix."""
    with tempfile.TemporaryDirectory(prefix="queryall-result-") as directory:

        def export(result_format: str) -> None:
            path = Path(directory) / result_format
            _WRITERS[result_format](table, path)
            store.put_file(job_id, result_format, path)
            path.unlink()

        if table.nbytes > CONCURRENT_EXPORT_BYTES:
            for result_format in _WRITERS:
                export(result_format)
            return
        with ThreadPoolExecutor(max_workers=len(_WRITERS), thread_name_prefix="export-file") as pool:
            for written in [pool.submit(export, result_format) for result_format in _WRITERS]:
                written.result()  # the first failure is raised, once every file is done
