"""What a batch and its query worker process say to each other over their pipe (`query_workers`).

The batch sends `RunBatch`; the worker answers `Ready` once its session is set up (or `Fatal` if it
cannot be), then for each tenant `TenantStarted` (its database is being opened), `QueryStarted` (it is
open: the query, and its timeout, begin) and `TenantDone`, and `BatchEnd` after the last tenant. The
messages cross the pipe pickled; a tenant's rows travel as an Arrow IPC stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from queryall.logic.combined_result import ipc_stream
from queryall.models.workflow import TenantOutcome


@dataclass(frozen=True)
class RunBatch:
    """Run the query on these tenants, in order."""

    buckets: tuple[str, ...]
    sql: str
    limit: int
    table: str | None


@dataclass(frozen=True)
class Ready:
    """The worker's sandboxed session is set up: it takes batches."""


@dataclass(frozen=True)
class Fatal:
    """The session could not be set up: every tenant of the batch fails with `message`."""

    message: str


@dataclass(frozen=True)
class TenantStarted:
    """The worker is opening (attaching) the tenant's database."""

    bucket: str


@dataclass(frozen=True)
class QueryStarted:
    """The tenant's database is open and its query starts: its timeout counts from here."""

    bucket: str


@dataclass(frozen=True)
class TenantDone:
    """The tenant's outcome, and its rows (an Arrow IPC stream) when it has any."""

    outcome_json: str
    rows_ipc: bytes | None

    @classmethod
    def of(cls, outcome: TenantOutcome, rows: pa.Table | None) -> TenantDone:
        return cls(outcome.model_dump_json(), None if rows is None else ipc_stream(rows))

    def outcome(self) -> TenantOutcome:
        return TenantOutcome.model_validate_json(self.outcome_json)

    def rows(self) -> pa.Table | None:
        return read_rows(self.rows_ipc)


def read_rows(rows_ipc: bytes | None) -> pa.Table | None:
    """A tenant's rows from the IPC stream they crossed the pipe in."""
    return None if rows_ipc is None else pa.ipc.open_stream(rows_ipc).read_all()


@dataclass(frozen=True)
class BatchEnd:
    """Every tenant of the batch is done; the worker waits for the next batch."""


WorkerMessage = Ready | Fatal | TenantStarted | QueryStarted | TenantDone | BatchEnd
