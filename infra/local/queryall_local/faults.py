"""Fault injection for the local stack only: chosen tenants fail on purpose, so what the service promises
under failure can be shown (every other tenant answered, each failure reported, nothing corrupt merged).

    queryall local serve --faults 'raise=acme,globex;hang=initech;corrupt=umbrella;throttle=hooli;timeout=soylent'
    QUERYALL_FAULTS='raise=acme;throttle=hooli' queryall local serve

The spec is ``KIND=bucket,bucket;KIND=…``; the kinds:

* ``raise``    the tenant's query raises (a DuckDB error naming the tenant);
* ``hang``     the tenant's query runs past the query timeout (``QueryTimeoutSeconds``) and is stopped;
* ``corrupt``  the tenant's rows come back with one row more than its query recorded: a corrupt partial,
  which Aggregate must detect and report, not merge;
* ``throttle`` the first invocation of the batch holding the tenant fails as Lambda's
  ``Lambda.TooManyRequestsException``; the state machine's Retry runs it again;
* ``timeout``  the same with ``Sandbox.Timedout`` (a Lambda that ran out of time).

The first three end as the tenant's error in ``meta.errors``; a throttled or timed-out batch recovers and
loses no tenant. Nothing here is deployed: it lives in the local stack's package and patches the
running process (undone on stop); on AWS there is no such option or variable.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENVIRONMENT_VARIABLE = "QUERYALL_FAULTS"
QUERY_BATCH_FUNCTION = "QueryBatchFunction"
# Long enough to outlast any query timeout the template allows (at most 900 s), cheap to interrupt.
_HANG_SQL = "SELECT count(*) AS never FROM range(9223372036854775807) AS a(i) WHERE hash(i) = 42"


class FaultSpecError(ValueError):
    """A --faults / QUERYALL_FAULTS value that cannot be read."""


class Faults(BaseModel):
    """Which tenants fail, and how."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    raise_: frozenset[str] = Field(default=frozenset(), alias="raise")
    hang: frozenset[str] = frozenset()
    corrupt: frozenset[str] = frozenset()
    throttle: frozenset[str] = frozenset()
    timeout: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, spec: str) -> Faults:
        kinds: dict[str, set[str]] = {}
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            kind, sep, buckets = part.partition("=")
            kind = kind.strip()
            if not sep or kind not in {"raise", "hang", "corrupt", "throttle", "timeout"}:
                raise FaultSpecError(f"fault {part!r}: expected KIND=bucket,… with KIND one of "
                                     "raise, hang, corrupt, throttle, timeout")
            kinds.setdefault(kind, set()).update(b.strip() for b in buckets.split(",") if b.strip())
        return cls.model_validate({kind: frozenset(buckets) for kind, buckets in kinds.items()})

    @classmethod
    def from_environment(cls) -> Faults | None:
        spec = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
        return cls.parse(spec) if spec else None

    @property
    def tenants(self) -> frozenset[str]:
        return self.raise_ | self.hang | self.corrupt | self.throttle | self.timeout

    def describe(self) -> str:
        kinds = {"raise": self.raise_, "hang": self.hang, "corrupt": self.corrupt, "throttle": self.throttle,
                 "timeout": self.timeout}
        return ", ".join(f"{kind} {len(buckets)}" for kind, buckets in kinds.items() if buckets) or "none"


class LambdaFaults:
    """Answers a QueryBatch invocation with a Lambda error the first time its batch holds a throttle or
    timeout tenant (the invocation hook of the local Lambda runtime)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._failed: set[tuple[str, int, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, function: str, payload: bytes) -> bytes | None:
        if function != QUERY_BATCH_FUNCTION:
            return None
        try:
            event = json.loads(payload)
            if "Items" in event:  # the distributed Map's batch: one {batch_index, bucket} per tenant
                job_id, items = event["BatchInput"]["job_id"], event["Items"]
                buckets, index = {item["bucket"] for item in items}, int(items[0]["batch_index"])
            else:
                job_id, batch = event["job_id"], event["batch"]
                buckets, index = set(batch["buckets"]), int(batch["batch_index"])
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # not a batch event: left alone
        for kind, chosen, error_type, message in (
            ("throttle", self.faults.throttle, "Lambda.TooManyRequestsException", "Rate Exceeded."),
            ("timeout", self.faults.timeout, "Sandbox.Timedout", "Task timed out after 900.00 seconds"),
        ):
            if buckets & chosen:
                with self._lock:
                    if (job_id, index, kind) in self._failed:
                        continue
                    self._failed.add((job_id, index, kind))
                # Printed, not logged: the handlers' Powertools loggers take over the process's log records.
                print(f"injected fault: {error_type} for batch {index} of job {job_id}", file=sys.stderr, flush=True)
                return json.dumps({"errorType": error_type, "errorMessage": f"{message} (injected fault)"}).encode()
        return None


@contextmanager
def tenant_faults(faults: Faults) -> Iterator[None]:
    """Patch the tenant query for the chosen tenants (before any query worker is forked: the workers
    inherit it), and undo it on exit."""
    import pyarrow as pa

    from queryall.logic.tenant_query import TenantQueryRunner

    original = TenantQueryRunner.run

    def run(self: Any, bucket: str, sql: str, limit: int, table: str | None, *args: Any, **kwargs: Any) -> Any:
        if bucket in faults.raise_:
            sql = f"SELECT error('injected fault: the query raised on tenant {bucket}')"
        elif bucket in faults.hang:
            sql = _HANG_SQL
        outcome, rows = original(self, bucket, sql, limit, table, *args, **kwargs)
        if bucket in faults.corrupt and rows is not None:
            extra = pa.table({name: pa.nulls(1, type=field.type) for name, field in zip(rows.column_names,
                                                                                         rows.schema, strict=True)})
            rows = pa.concat_tables([rows, extra.cast(rows.schema)])  # one row more than `outcome.rows`
        return outcome, rows

    TenantQueryRunner.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        TenantQueryRunner.run = original  # type: ignore[method-assign]
