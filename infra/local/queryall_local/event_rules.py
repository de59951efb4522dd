"""The template's EventBridge rules, delivered locally: moto records rules but never runs a Lambda target.

An event the local stack sees (today: a Step Functions execution status change, from
:mod:`.moto_compat`) is matched against each `EventBridgeRule` event of the template, as EventBridge
would, and each matching rule's function is invoked asynchronously with the event, as its target would be.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lambda_runtime import LambdaRuntime
    from .template import StackSpec

LOG = logging.getLogger(__name__)


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches an EventBridge ``pattern``: every key of the pattern is in the event, a
    list names the values allowed, a nested object matches the nested member. Content filters
    (prefix, numeric, exists, anything-but) are not emulated: a pattern using one raises ValueError."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not matches(wanted, value):
                return False
            continue
        if not isinstance(wanted, list):
            raise ValueError(f"event pattern member {key!r} must be a list or an object")
        if any(isinstance(option, Mapping) for option in wanted):
            raise ValueError(f"event pattern member {key!r}: content filters are not emulated locally")
        values = value if isinstance(value, list) else [value]
        if not any(option in values for option in wanted):
            return False
    return True


def envelope(spec: StackSpec, source: str, detail_type: str, detail: dict[str, Any],
             resources: list[str]) -> dict[str, Any]:
    """An event as EventBridge hands it to a target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": spec.account_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": spec.region, "resources": resources, "detail": detail}


class RuleTargets:
    """Invokes the function of every template rule on the default bus that an event matches."""

    def __init__(self, spec: StackSpec, runtime: LambdaRuntime) -> None:
        self._spec = spec
        self._runtime = runtime

    def deliver(self, event: dict[str, Any]) -> int:
        """Invoke each matching rule's function with ``event``; returns how many were invoked."""
        delivered = 0
        for rule in self._spec.event_rules:
            if rule.bus == "default" and matches(rule.pattern, event):
                LOG.info("event %s (%s) -> %s", event.get("detail-type"), rule.name, rule.function)
                self._runtime.invoke_async(rule.function, json.dumps(event).encode())
                delivered += 1
        return delivered

    def execution_status_changed(self, detail: dict[str, Any]) -> None:
        """What Step Functions puts on the default bus when an execution's status changes."""
        self.deliver(envelope(self._spec, "aws.states", "Step Functions Execution Status Change", detail,
                              [detail["executionArn"]]))
