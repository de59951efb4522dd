"""The EventBridge event Step Functions sends when an execution's status changes (what the watchdog reads)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel


class ExecutionStatusChange(BaseModel):
    """`detail` of a "Step Functions Execution Status Change" event (the members the watchdog uses)."""

    executionArn: str  # noqa: N815  (the event's own names)
    stateMachineArn: str  # noqa: N815
    name: str  # the execution's name: the job id (submit names each execution after its job)
    status: str
    error: str | None = None
    cause: str | None = None


class ExecutionStatusEvent(EventBridgeModel):
    detail: ExecutionStatusChange
