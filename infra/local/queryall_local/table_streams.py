"""Event source mappings from DynamoDB streams (a function's `DynamoDB` event), run by the local stack.

moto keeps each table's stream (DescribeStream, GetShardIterator, GetRecords) but runs no event source
mapping of its own for our in-process functions, so a poller thread per mapping does what Lambda's does:
reads the shard in order, invokes the function with up to BatchSize records, and on failure retries
from the first failed record (ReportBatchItemFailures), halving the batch on a function error
(BisectBatchOnFunctionError), until MaximumRetryAttempts is used up (then the batch is logged as sent
to the on-failure destination and skipped). The poller starts reading once the table exists (the
stack creates it on DynamoDB's first use) and reads from the stream's start, as TRIM_HORIZON does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from .background import BackgroundLoop

if TYPE_CHECKING:
    from .lambda_runtime import LambdaRuntime
    from .moto_services import MotoServices
    from .template import StackSpec, TableStreamSpec

LOG = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.1  # between reads of an empty shard
FIRST_RETRY_SECONDS = 0.1
LONGEST_RETRY_SECONDS = 2.0


class StreamPoller(BackgroundLoop):
    """One event source mapping: the stream of ``mapping.table`` into ``mapping.function``."""

    def __init__(self, spec: StackSpec, mapping: TableStreamSpec, moto: MotoServices, runtime: LambdaRuntime) -> None:
        self._table = spec.tables[mapping.table]
        self._mapping = mapping
        self._moto = moto
        self._runtime = runtime
        super().__init__(f"stream-{mapping.function}")

    def start(self, patches: contextlib.ExitStack) -> None:
        if self._table.stream_view_type is None:
            raise ValueError(f"{self._mapping.function} reads the stream of {self._table.logical_id}, "
                             "which has no StreamSpecification")
        self._thread.start()
        patches.callback(self.stop)

    def _run(self) -> None:
        # Nothing to read before the table exists; polling must not create it (services start on first use).
        while not self._moto.used("dynamodb"):
            if self._stop.wait(IDLE_POLL_SECONDS):
                return
        try:
            streams = self._moto.client("dynamodbstreams")
            stream_arn = self._moto.client("dynamodb").describe_table(
                TableName=self._table.name)["Table"]["LatestStreamArn"]
            shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
            iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while not self._stop.is_set():
                answer = streams.get_records(ShardIterator=iterator, Limit=self._mapping.batch_size)
                iterator = answer["NextShardIterator"]
                records = answer["Records"]
                if not records:
                    self._stop.wait(IDLE_POLL_SECONDS)
                    continue
                self._deliver([_as_lambda_gives_it(record, stream_arn) for record in records])
        except Exception:  # the stack goes on; its events stop, which the log says
            if not self._stop.is_set():
                LOG.exception("the stream poller of %s stopped", self._mapping.function)

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke the function on ``records`` in order until each was taken (or given up on)."""
        batch_size = len(records)
        attempts = 0
        while records and not self._stop.is_set():
            batch = records[:batch_size]
            failed_at = self._invoke(batch)
            if failed_at is None:
                records = records[len(batch):]
                batch_size, attempts = self._mapping.batch_size, 0
                continue
            if failed_at < 0 and self._mapping.bisect_on_error and len(batch) > 1:
                batch_size = (len(batch) + 1) // 2  # the next try takes the first half
            elif failed_at > 0:
                records = records[failed_at:]  # the records before the first failure are done
            attempts += 1
            retries = self._mapping.maximum_retry_attempts
            if 0 <= retries < attempts:
                first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
                LOG.error("%s failed on stream records %s..%s %d times: sent to its on-failure destination",
                          self._mapping.function, first, last, attempts)
                records = records[len(batch):] if failed_at < 0 else records[1:]
                attempts = 0
                continue
            self._stop.wait(min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1)))

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """None when the whole batch was taken; else the index of the first record to retry (-1: the
        function failed, all of them)."""
        payload, function_error = self._runtime.invoke_raw(self._mapping.function,
                                                           json.dumps({"Records": batch}).encode())
        if function_error:
            LOG.warning("%s failed on %d stream records; retrying", self._mapping.function, len(batch))
            return -1
        if not self._mapping.report_batch_item_failures:
            return None
        failures = {item.get("itemIdentifier") for item in (json.loads(payload or b"{}") or {}).get(
            "batchItemFailures", [])}
        if not failures:
            return None
        LOG.warning("%s reported %d of %d stream records failed; retrying from the first",
                    self._mapping.function, len(failures), len(batch))
        return next((i for i, record in enumerate(batch) if record["dynamodb"]["SequenceNumber"] in failures), -1)


def _as_lambda_gives_it(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record of GetRecords (as boto3 parsed it) in the JSON shape of a Lambda stream event: creation
    time in epoch seconds, binary attributes in base64, and the stream's ARN."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("NewImage", "OldImage", "Keys"):
        if image in stream:
            stream[image] = _base64_binaries(stream[image])
    return {**record, "dynamodb": stream, "eventSourceARN": stream_arn}


def _base64_binaries(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _base64_binaries(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_base64_binaries(item) for item in value]
    return value


def start_table_streams(spec: StackSpec, moto: MotoServices, runtime: LambdaRuntime,
                        patches: contextlib.ExitStack) -> None:
    """Run every DynamoDB event source mapping of the template until ``patches`` closes."""
    for mapping in spec.table_streams:
        StreamPoller(spec, mapping, moto, runtime).start(patches)
