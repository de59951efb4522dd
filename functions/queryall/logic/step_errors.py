"""Readable messages from the Error/Cause pairs Step Functions' Catch records.

Kept apart from aggregation so FailJob (no DuckDB layer) can use it without loading pyarrow."""

from __future__ import annotations

import json

from queryall.models.workflow import StepError


def describe_step_error(error: StepError) -> str:
    """A readable message from a Catch's Error/Cause (Cause is often a Lambda error payload)."""
    cause = error.Cause or ""
    try:
        payload = json.loads(cause)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "errorMessage" in payload:
        return f"{payload.get('errorType', error.Error)}: {payload['errorMessage']}"
    return f"{error.Error}: {cause}" if cause else error.Error
