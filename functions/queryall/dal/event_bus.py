"""The EventBridge bus the job state-change events go to."""

from __future__ import annotations

import json
from collections.abc import Sequence

from queryall.dal.aws import client

_PUT_EVENTS_ENTRIES = 10  # PutEvents' limit per request


class EventPutFailed(RuntimeError):
    """EventBridge did not take an event (its error code says why); the caller retries the record."""


class EventBus:
    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, source: str, detail_type: str, details: Sequence[dict], resources: Sequence[str] = ()) -> None:
        """Put one event per detail; raises EventPutFailed unless EventBridge took every one."""
        for start in range(0, len(details), _PUT_EVENTS_ENTRIES):
            entries = [{"Source": source, "DetailType": detail_type, "EventBusName": self.name,
                        "Resources": list(resources), "Detail": json.dumps(detail, separators=(",", ":"))}
                       for detail in details[start: start + _PUT_EVENTS_ENTRIES]]
            response = client("events").put_events(Entries=entries)
            # PutEvents answers 200 even when entries fail: each failed entry carries its error code.
            if response.get("FailedEntryCount"):
                errors = sorted({entry.get("ErrorCode", "?") for entry in response["Entries"] if "ErrorCode" in entry})
                raise EventPutFailed(f"EventBridge rejected {response['FailedEntryCount']} events: {', '.join(errors)}")
