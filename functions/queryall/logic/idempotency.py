"""Idempotent submit: the same caller, `Idempotency-Key` and body give the same job, started once.

Powertools' idempotency utility with its DynamoDB persistence layer (the IdempotencyTable): the record is
keyed by a hash of (caller, key), so two callers never share one, and it holds a hash of the request to
tell a retry from a different request under the same key (409). Its first write is conditional, so of
concurrent duplicates exactly one runs the submit; the others find it in progress, wait for its answer
and return the same job. A submit that fails (400, 403, 503…) leaves no record: the retry runs again.
Imported only when a request carries the header, so plain submits do not pay for the utility's imports.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from queryall.dal.aws import client
from queryall.errors import Conflict, InvalidRequest, ServiceUnavailable

# 1-255 printable ASCII characters (what the header may hold, and what is hashed into the record key).
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
# How long a duplicate waits for the first submit's answer (a submit takes well under a second).
IN_PROGRESS_WAIT_SECONDS = 20.0
_POLL_SECONDS = 0.05


def check_idempotency_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise InvalidRequest("Idempotency-Key: must be 1-255 printable ASCII characters")
    return value


def submit_once(
    caller: str,
    idempotency_key: str,
    request: dict[str, Any],
    submit: Callable[[], str],
    *,
    table_name: str,
    expires_after_seconds: int,
    lambda_context: Any = None,
) -> str:
    """The job id of this (caller, key): `submit()`'s, run now or by an earlier identical request."""
    config = IdempotencyConfig(
        event_key_jmespath="[caller, idempotency_key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
        hash_function="sha256",
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client("dynamodb"))

    @idempotent_function(data_keyword_argument="submission", config=config, persistence_store=persistence)
    def submit_job_once(submission: dict[str, Any]) -> dict[str, str]:
        return {"job_id": submit()}

    submission = {"caller": caller, "idempotency_key": idempotency_key, "request": request}
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while True:
        try:
            return submit_job_once(submission=submission)["job_id"]
        except IdempotencyValidationError:
            raise Conflict("Idempotency-Key reused with a different request") from None
        except IdempotencyAlreadyInProgressError:
            if time.monotonic() >= deadline:
                raise ServiceUnavailable("An identical request with this Idempotency-Key is still running; "
                                         "try again") from None
            time.sleep(_POLL_SECONDS)
