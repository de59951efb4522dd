"""The full result's files (Arrow, Parquet, CSV, JSON) and reading pages back from the Arrow file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from queryall.logic.json_rows import table_to_json_rows, write_csv, write_parquet
from queryall.logic.result_export import ARROW_BATCH_ROWS, write_arrow_file, write_json_file
from queryall.logic.result_pages import arrow_within, read_rows, rows_within
from queryall.models.job import Job, JobRequest, JobStatus

TRICKY_SQL = r"""
SELECT 'acme' AS _bucket, 1 AS a, 2 AS a, NULL::INTEGER AS n, '' AS e, NULL::VARCHAR AS nv,
       union_value(x := 1)::UNION(x INT, y VARCHAR) AS u, INTERVAL 1 MONTH AS iv, [1, NULL] AS l,
       {'x': 1.5, 'y': 'q"'} AS s, MAP {'k': 1} AS m, 'a,b' || chr(10) || '"c"' AS tricky, '\x00\xFF'::BLOB AS b,
       'NaN'::DOUBLE AS d, TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tz,
       170141183460469231731687303715884105727::HUGEINT AS h, 'é😀' AS uni, '{"k": [1]}'::JSON AS j,
       1.50::DECIMAL(5,2) AS dec, true AS bo, 'x\y' AS bs, DATE '2024-02-29' AS dt
"""


@pytest.fixture(scope="module")
def tricky() -> pa.Table:
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        return con.execute(TRICKY_SQL).to_arrow_table()


def test_csv_fields_are_the_json_rendering_with_strings_unquoted(tricky: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(tricky, str(path))
    text = path.read_text(encoding="utf-8")
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    assert header == ["_bucket", "a", "a_1", "n", "e", "nv", "u", "iv", "l", "s", "m", "tricky", "b", "d", "tz", "h",
                      "uni", "j", "dec", "bo", "bs", "dt"]
    assert row == ["acme", "1", "2", "", "", "", '{"x":1}', "1 month", "[1,null]", '{"x":1.5,"y":"q\\""}', '{"k":1}',
                   'a,b\n"c"', "AP8=", "NaN", "2024-01-02 01:04:05+00", "170141183460469231731687303715884105727",
                   "é😀", '{"k": [1]}', "1.50", "true", "x\\y", "2024-02-29"]
    # NULL is an empty field, an empty string is "" (csv.reader reads both as '', DuckDB does not).
    assert ',,"",,' in text.splitlines()[1]
    json_row = json.loads(table_to_json_rows(tricky)[0])
    assert [str(v) if isinstance(v, int | str) else v for v in json_row[:3]] == row[:3]


def test_parquet_reads_back_in_duckdb_as_every_value_was(tricky: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    write_parquet(tricky, str(path))
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("original", tricky.rename_columns([f"c{i}" for i in range(tricky.num_columns)]))
        # Parquet names the repeated column a_1, so compare by position, as DuckDB's text of each value.
        as_text = "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "
        back = con.execute(as_text + f"read_parquet('{path}')").fetchone()
        original = con.execute(as_text + "original").fetchone()
        # Parquet has no union: DuckDB writes a UNION as a STRUCT of its tag and members.
        union = tricky.column_names.index("u")
        assert back[union] == "(0, 1, NULL)" and original[union] == "1"
        assert back[:union] + back[union + 1:] == original[:union] + original[union + 1:]
        types = [t for _, t, *_ in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
        assert "INTERVAL" in types and "TIMESTAMP WITH TIME ZONE" in types and "DECIMAL(38,0)" in types


def _numbers(rows: int) -> pa.Table:
    # Two chunks that do not line up with the batch size, so batch boundaries are the writer's doing.
    first = pa.table({"_bucket": ["a"] * 777, "i": list(range(777))})
    second = pa.table({"_bucket": ["b"] * (rows - 777), "i": list(range(777, rows))})
    return pa.concat_tables([first, second])


class _Source(io.BytesIO):
    """result.arrow as read_rows sees it, from memory instead of ranged GETs."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)
        self.read_ahead = 0


class _Links:
    def __init__(self, data: bytes) -> None:
        self.store = self
        self.data = data

    def open(self, job_id: str, result_format: str, tail_bytes: int) -> _Source:
        assert result_format == "arrow"
        return _Source(self.data)


def _job() -> Job:
    return Job(job_id="j", status=JobStatus.COMPLETED, owner="o", created_at="t", submitted_at=1, expires_at=2,
               request=JobRequest(sql="SELECT 1", limit=1))


@pytest.mark.parametrize(("offset", "count"), [(0, 0), (0, 1), (0, 1000), (999, 2), (1000, 1000), (1500, 2500),
                                               (3999, 1), (0, 4001), (4000, 1)])
def test_pages_read_from_the_arrow_file_are_exact_slices(tmp_path: Path, offset: int, count: int) -> None:
    table = _numbers(4001)
    path = tmp_path / "r.arrow"
    write_arrow_file(table, path)
    with pa.ipc.open_file(str(path)) as reader:
        sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
    assert sizes == [ARROW_BATCH_ROWS] * 4 + [1]
    page = read_rows(_Links(path.read_bytes()), _job(), table.num_rows, 2, offset, count)
    assert page.to_pylist() == table.slice(offset, count).to_pylist()
    assert page.schema == table.schema


def test_json_file_holds_every_row(tmp_path: Path) -> None:
    table = _numbers(1200)
    path = tmp_path / "r.json"
    write_json_file(table, path)
    assert json.loads(path.read_text()) == {"columns": ["_bucket", "i"],
                                            "rows": [json.loads(r) for r in table_to_json_rows(table)]}


def test_responses_are_cut_by_bytes() -> None:
    table = pa.table({"_bucket": ["a"] * 100, "s": ['"' * 1000] * 100})
    rows = rows_within(table, 50_000)
    # A row is ["a","\"\"…"] (2,010 characters); in a response each \" becomes \\\" and each structural
    # quote \", so 4,014 bytes plus a comma: after the opening bracket, 12 rows fit 50,000.
    assert len(rows) == 12
    encoded, held = arrow_within(table, 20_000)
    assert 0 < held < 100 and len(encoded) <= 20_000
    assert pa.ipc.open_stream(__import__("base64").b64decode(encoded)).read_all() == table.slice(0, held)


class _FakeS3:
    """get_object with Range, as S3 answers it (suffix ranges included), counting requests."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[str] = []

    def get_object(self, Bucket: str, Key: str, Range: str) -> dict:
        self.ranges.append(Range)
        first, _, last = Range.removeprefix("bytes=").partition("-")
        start = max(0, len(self.data) - int(last)) if first == "" else int(first)
        end = len(self.data) if first == "" else min(len(self.data), int(last) + 1)
        return {"Body": io.BytesIO(self.data[start:end]),
                "ContentRange": f"bytes {start}-{end - 1}/{len(self.data)}"}


def test_a_page_costs_two_ranged_gets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from queryall.dal import result_files
    from queryall.logic.result_links import ResultLinks

    table = pa.table({"_bucket": ["a"] * 20_000, "s": [f"row {i} " * 5 for i in range(20_000)]})
    path = tmp_path / "r.arrow"
    write_arrow_file(table, path)
    s3 = _FakeS3(path.read_bytes())
    monkeypatch.setattr(result_files, "client", lambda service: s3)
    links = ResultLinks(result_files.ResultStore("bucket"), 900, 0.0)
    page = read_rows(links, _job(), table.num_rows, 2, 12_345, 3000)
    assert page.to_pylist() == table.slice(12_345, 3000).to_pylist()
    assert len(s3.ranges) == 2 and s3.ranges[0].startswith("bytes=-")
    # The second request reads from the first batch needed, not from the start of the file.
    assert int(s3.ranges[1].removeprefix("bytes=").split("-")[0]) > len(s3.data) // 2
