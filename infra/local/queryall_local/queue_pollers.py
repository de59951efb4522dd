"""Lambda's SQS event source mappings, locally: a thread per `SQS` event polls its queue into the function.

As Lambda does: a batch of up to BatchSize messages is one synchronous invocation; with
ReportBatchItemFailures only the messages the function names in ``batchItemFailures`` stay on the queue
(the others are deleted), without it a failed invocation leaves the whole batch. A message left there
comes back after its visibility timeout, and moto moves it to the dead-letter queue after
maxReceiveCount receives (the queue's RedrivePolicy), as SQS does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .background import BackgroundLoop

if TYPE_CHECKING:
    from .lambda_runtime import LambdaRuntime
    from .moto_services import MotoServices
    from .template import QueueSourceSpec, StackSpec

LOG = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.2  # between receives from an empty queue


class QueuePoller(BackgroundLoop):
    def __init__(self, services: MotoServices, runtime: LambdaRuntime, spec: StackSpec,
                 source: QueueSourceSpec) -> None:
        self._services = services
        self._runtime = runtime
        self._source = source
        self._queue = spec.queues_by_name()[source.queue]
        super().__init__(f"sqs-poller-{source.queue}")
        # Message ids handed to the function whose invocation has ended (queryall local send-message waits on it).
        self._done: set[str] = set()
        self._done_changed = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    def wait_for(self, message_id: str, timeout: float) -> bool:
        """Wait until the message has been through the function once; False if it has not by ``timeout``."""
        with self._done_changed:
            return self._done_changed.wait_for(lambda: message_id in self._done, timeout)

    def _run(self) -> None:
        sqs = self._services.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self._queue.url, MaxNumberOfMessages=min(self._source.batch_size, 10),
                    AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as exc:  # the stack is stopping, or moto failed: try again shortly
                LOG.debug("receive from %s failed: %s", self._queue.name, exc)
                messages = []
            if not messages:
                self._stop.wait(IDLE_POLL_SECONDS)
                continue
            self._deliver(sqs, messages)

    def _deliver(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        try:
            result = self._runtime.invoke(self._source.function, event)
        except Exception as exc:
            LOG.warning("%s failed on a batch of %d from %s: %s", self._source.function, len(messages),
                        self._queue.name, exc)
            failed = {message["MessageId"] for message in messages}
        else:
            failed = set()
            if self._source.report_batch_item_failures and isinstance(result, dict):
                failed = {item.get("itemIdentifier") for item in result.get("batchItemFailures") or []}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=self._queue.url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(done)])
        with self._done_changed:
            self._done.update(message["MessageId"] for message in messages)
            self._done_changed.notify_all()

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message as Lambda's SQS event shows it."""
        attributes = {name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                             "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
                      for name, value in (message.get("MessageAttributes") or {}).items()}
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes") or {"SentTimestamp": str(int(time.time() * 1000))},
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue.arn,
            "awsRegion": self._queue.arn.split(":")[3],
        }


class QueuePollers:
    """Every SQS event source of the template, started on SQS's first use (a stack that never uses SQS
    never loads moto's SQS backend) and stopped with the stack."""

    def __init__(self, services: MotoServices, runtime: LambdaRuntime, spec: StackSpec) -> None:
        self.pollers = {source.queue: QueuePoller(services, runtime, spec, source) for source in spec.queue_sources}
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for poller in self.pollers.values():
                poller.start()

    def stop(self) -> None:
        for poller in self.pollers.values():
            poller.stop()
