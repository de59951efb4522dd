"""What the local stack shows of the events it puts on EventBridge: ``queryall local serve`` logs each
job state-change event, and with ``--forward-events URL`` POSTs each one (the full EventBridge event as
JSON) to that URL, retrying until it answers 2xx.

The events take the deployed path: the stream consumer puts them on the configured bus in moto, where a
rule (source ``queryall``) delivers them to an SQS queue of the stack's own; a thread reads that queue
and hands each event to the listeners. A bus other than ``default`` is created locally, as the stack
that the deployed template expects would have it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .background import BackgroundLoop

if TYPE_CHECKING:
    from .moto_services import MotoServices

LOG = logging.getLogger(__name__)

EVENT_BUS_PARAMETER = "EventBusName"
TAP_QUEUE = "queryall-local-event-tap"
TAP_RULE = "queryall-local-event-tap"
EVENT_PATTERN = {"source": ["queryall"]}
IDLE_POLL_SECONDS = 0.2
FORWARD_TIMEOUT_SECONDS = 10
FIRST_RETRY_SECONDS = 0.2
LONGEST_RETRY_SECONDS = 5.0

EventListener = Callable[[dict[str, Any]], None]


def ensure_event_bus(moto: MotoServices, bus: str) -> None:
    """Create ``bus`` in moto unless it is the default one (which always exists)."""
    if bus == "default":
        return
    events = moto.client("events")
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=bus)


def log_event(event: dict[str, Any]) -> None:
    LOG.info("event %s", json.dumps(event, separators=(",", ":")))


class EventTap(BackgroundLoop):
    """Delivers every ``queryall`` event on ``bus`` to ``listeners``, in order, on its own thread."""

    def __init__(self, moto: MotoServices, bus: str, listeners: Sequence[EventListener]) -> None:
        self._moto = moto
        self._bus = bus
        self._listeners = list(listeners)
        self._queue_url: str | None = None
        super().__init__("local-event-tap")

    def start(self, patches: contextlib.ExitStack) -> None:
        # The rule and queue appear with EventBridge (no event can be put before it is used).
        self._moto.on_first_use("events", self._install)
        self._thread.start()
        patches.callback(self.stop)

    def _install(self, moto: MotoServices) -> None:
        ensure_event_bus(moto, self._bus)
        url = moto.client("sqs").create_queue(QueueName=TAP_QUEUE)["QueueUrl"]
        arn = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events = moto.client("events")
        events.put_rule(Name=TAP_RULE, EventBusName=self._bus, EventPattern=json.dumps(EVENT_PATTERN),
                        State="ENABLED", Description="the local stack's event log and --forward-events")
        events.put_targets(Rule=TAP_RULE, EventBusName=self._bus, Targets=[{"Id": "tap", "Arn": arn}])
        self._queue_url = url

    def _run(self) -> None:
        while self._queue_url is None:
            if self._stop.wait(IDLE_POLL_SECONDS):
                return
        sqs = self._moto.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
            except Exception:  # the stack is stopping under us, or moto hiccupped: try again
                LOG.debug("event tap could not read its queue", exc_info=True)
                messages = []
            if not messages:
                self._stop.wait(IDLE_POLL_SECONDS)
                continue
            for message in messages:
                event = json.loads(message["Body"])
                for listener in self._listeners:
                    try:
                        listener(event)
                    except Exception:
                        LOG.exception("an event listener failed")
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])


class EventForwarder(BackgroundLoop):
    """POSTs each event to ``url`` in order, retrying each (with backoff) until it answers 2xx."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--forward-events needs an http(s) URL, got {url!r}")
        self.url = url
        self._pending: queue.Queue[dict[str, Any]] = queue.Queue()
        super().__init__("local-event-forwarder", join_timeout=FORWARD_TIMEOUT_SECONDS + 1)

    def __call__(self, event: dict[str, Any]) -> None:
        self._pending.put(event)

    def start(self, patches: contextlib.ExitStack) -> None:
        self._thread.start()
        patches.callback(self.stop)

    def stop(self) -> None:
        super().stop()
        if not self._pending.empty():
            LOG.warning("%d events were not forwarded to %s before the stack stopped", self._pending.qsize(), self.url)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._pending.get(timeout=IDLE_POLL_SECONDS)
            except queue.Empty:
                continue
            attempt = 0
            while not self._post(event):
                attempt += 1
                if self._stop.wait(min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempt - 1))):
                    self._pending.put(event)  # counted as not forwarded
                    return

    def _post(self, event: dict[str, Any]) -> bool:
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError as error:
            LOG.warning("forwarding event %s to %s failed: %s; retrying", event.get("id"), self.url, error)
            return False
        if 200 <= status < 300:
            return True
        LOG.warning("forwarding event %s to %s: HTTP %d; retrying", event.get("id"), self.url, status)
        return False
