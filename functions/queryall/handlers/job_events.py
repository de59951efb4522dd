"""DynamoDB stream consumer of the jobs table: puts a state-change event on EventBridge for every write
that changed a job's status (why the stream: queryall.logic.job_events).

Each record is processed on its own and a failed one is reported back (Powertools' batch utility,
ReportBatchItemFailures): the event source mapping retries from the first failed record, so the records
before it are not put again and one bad record never holds back the ones already done.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.dal.event_bus import EventBus
from queryall.dal.jobs import job_from_stream_image
from queryall.handlers.function import function_handler
from queryall.logic.job_events import state_change
from queryall.models.job import Job
from queryall.models.job_event import DETAIL_TYPE, EVENT_SOURCE
from queryall.observability import logger, metrics
from queryall.settings import get_settings

_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _job(image: dict[str, Any] | None) -> Job | None:
    # The same table holds the SQL cache (job_id "sql-cache:…"): no status, not a job.
    return job_from_stream_image(image) if image and "status" in image else None


def _record_handler(record: DynamoDBRecord) -> None:
    stream = record.raw_event.get("dynamodb") or {}
    settings = get_settings()
    detail = state_change(_job(stream.get("OldImage")), _job(stream.get("NewImage")),
                          settings.require("results_bucket"))
    if detail is None:
        return
    EventBus(settings.require("event_bus_name")).put(EVENT_SOURCE, DETAIL_TYPE, [detail.model_dump(mode="json")])
    metrics.add_metric(name="JobEventsPut", unit="Count", value=1)
    logger.info("job state change put", extra={"job_id": detail.job_id, "state": detail.currentState,
                                               "sequence_number": detail.sequenceNumber})


def _handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=_record_handler, processor=_processor,
                                    context=context)


handler = function_handler(_handler, settings=("results_bucket", "event_bus_name"))
