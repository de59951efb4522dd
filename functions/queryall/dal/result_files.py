"""The full result of a job in S3, under the job's prefix next to its partial results.

Written once by the aggregator, read by the results pages, downloaded by callers through presigned
URLs. The objects live as long as the job is readable (its URLs never outlive it); the bucket's
lifecycle rule on ``jobs/`` deletes them afterwards.
"""

from __future__ import annotations

import io
from pathlib import Path

from queryall.dal.aws import client

# Object name and content type of each format of the full result.
RESULT_FILES = {
    "json": ("result.json", "application/json"),
    "arrow": ("result.arrow", "application/vnd.apache.arrow.file"),
    "csv": ("result.csv", "text/csv; charset=utf-8"),
    "parquet": ("result.parquet", "application/vnd.apache.parquet"),
}
# Files smaller than this go up in one PutObject (upload_file's own multipart threshold is 8 MB).
SINGLE_PUT_BYTES = 8 * 1024 * 1024


def job_prefix(job_id: str) -> str:
    """Where every object of a job lives: its partial results, map items and full result."""
    return f"jobs/{job_id}/"


def result_key(job_id: str, result_format: str) -> str:
    return job_prefix(job_id) + RESULT_FILES[result_format][0]


class ResultStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put_file(self, job_id: str, result_format: str, path: Path) -> None:
        key, content_type = result_key(job_id, result_format), RESULT_FILES[result_format][1]
        if path.stat().st_size < SINGLE_PUT_BYTES:
            # One request: upload_file starts a transfer manager and its threads for every file.
            client("s3").put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
            return
        # upload_file switches to a multipart upload for large files.
        client("s3").upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def presigned_url(self, job_id: str, result_format: str, expires_in: int) -> str:
        """A GET URL for the file; signing is local (no request), so poll pays nothing for it."""
        return client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": result_key(job_id, result_format)},
            ExpiresIn=expires_in,
        )

    def open(self, job_id: str, result_format: str, tail_bytes: int) -> RangeFile:
        return RangeFile(self.bucket, result_key(job_id, result_format), tail_bytes)


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of one S3 object that fetches byte ranges as they are read.

    Opening fetches the last ``tail_bytes`` (where an Arrow IPC file keeps its footer). A read outside
    what was fetched gets at least ``read_ahead`` bytes from there on, so a reader stepping through
    consecutive record batches costs one request when ``read_ahead`` covers them.
    """

    def __init__(self, bucket: str, key: str, tail_bytes: int) -> None:
        super().__init__()
        self.bucket = bucket
        self.key = key
        self.read_ahead = 0
        response = self._get(f"bytes=-{max(1, tail_bytes)}")
        self.size = int(response["ContentRange"].rsplit("/", 1)[1])
        data = response["Body"].read()
        self._ranges: list[tuple[int, bytes]] = [(self.size - len(data), data)]
        self._position = 0

    def _get(self, byte_range: str) -> dict:
        return client("s3").get_object(Bucket=self.bucket, Key=self.key, Range=byte_range)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = max(0, min(len(buffer), self.size - self._position))
        data = self._read_at(self._position, count)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _read_at(self, start: int, count: int) -> bytes:
        if count == 0:
            return b""
        for first, data in self._ranges:
            if first <= start and start + count <= first + len(data):
                return data[start - first: start - first + count]
        end = min(self.size, start + max(count, self.read_ahead))
        data = self._get(f"bytes={start}-{end - 1}")["Body"].read()
        self._ranges.append((start, data))
        return data[:count]
