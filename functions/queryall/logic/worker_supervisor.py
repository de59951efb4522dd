"""The decisions a batch takes about its tenants and its query workers, apart from the processes.

`query_workers` forks the workers, reads their messages (`worker_protocol`) and acts; this module
decides, from the messages, the clock and the worker's memory, what each decision is: follow on, kill
the worker (too long, too big), fail a tenant, retry a tenant in a fresh worker, replace a worker that
never got going at no tenant's cost, reuse a worker for the next batch or retire it.

Every stage has its own limit, so that waiting for one never eats another's budget (a busy machine
slows forking and opening databases, never a tenant's query budget):

- setting the session up (fork, DuckDB, sandbox), from the fork to `Ready`: `setup_timeout_seconds`;
  a worker over it is replaced, and the batch fails only after `setup_attempts` such workers in a row;
- opening a tenant's database, from `TenantStarted` to `QueryStarted` (and waiting for the next tenant
  to start): `open_timeout_seconds`; a tenant over it is retried once in a fresh worker;
- the tenant's query, from `QueryStarted`: `timeout_seconds` (the worker interrupts it then), plus
  `kill_grace_seconds` for a query DuckDB cannot interrupt, after which the worker is killed.

Two limits end the batch early, whatever stage it is in (`BatchSupervisor.cut_short`):

- the job's deadline: past it no tenant starts, the running one is stopped (its worker killed), and
  every tenant left fails DEADLINE_EXCEEDED; the job then completes with the rows it has;
- the circuit breaker: after `breaker_timeouts` tenants in a row ran into the per-tenant timeout (a
  CPU-bound query that no tenant finishes), the rest of the batch is not tried and fails CIRCUIT_OPEN,
  so a runaway query costs a batch `breaker_timeouts` timeouts, not one per tenant. Any tenant that
  finishes in time closes it again. Batches run side by side, so a job pays about that many timeouts
  in all, instead of batch_size of them one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from queryall.logic.worker_protocol import (
    BatchEnd,
    Fatal,
    QueryStarted,
    Ready,
    TenantDone,
    TenantStarted,
    WorkerMessage,
)
from queryall.models.workflow import DEADLINE_EXCEEDED, TenantOutcome

SESSION_NOT_STARTED = "Could not start the query session in time"
CIRCUIT_OPEN = "Skipped: circuit open ({count} tenants in a row exceeded the {timeout:g} s timeout)"
# Consecutive per-tenant timeouts after which the rest of a batch is skipped (see the module's docstring).
BREAKER_TIMEOUTS = 3
# A tenant's outcome and its rows as an Arrow IPC stream (None: no rows).
TenantResult = tuple[TenantOutcome, bytes | None]


@dataclass(frozen=True)
class SupervisionLimits:
    timeout_seconds: float
    memory_limit_mb: int
    setup_timeout_seconds: float
    open_timeout_seconds: float
    kill_grace_seconds: float
    retire_growth: float  # share of the hard limit a worker may grow by over its life and still be reused
    setup_attempts: int
    breaker_timeouts: int = BREAKER_TIMEOUTS

    @property
    def hard_memory_bytes(self) -> int:
        """How far a worker may grow while a tenant runs: DuckDB's limit covers its buffers only."""
        return int(self.memory_limit_mb * 1.25 + 256) * 1024 * 1024


@dataclass(frozen=True)
class Decision:
    """What to do after a message or a look at the worker."""

    results: tuple[TenantResult, ...] = ()  # tenants finished, in order
    kill: bool = False  # stop the worker process now
    stop: bool = False  # stop following this worker; a fresh one takes the tenants left
    reusable: bool = False  # with stop: the worker finished the batch and may take another


FOLLOW = Decision()


class Stage(Enum):
    SETUP = "setting up the session"
    BETWEEN = "between tenants"
    OPENING = "opening the tenant's database"
    QUERYING = "running the tenant's query"


class BatchSupervisor:
    """One batch's tenants across the workers that run them: which are left, and when to give up."""

    def __init__(self, buckets: list[str], limits: SupervisionLimits, deadline: float | None = None) -> None:
        self.remaining = list(buckets)
        self.limits = limits
        self.deadline = deadline  # on the monotonic clock; None: the job has none
        self._stalls = 0  # workers in a row that ended or stalled without finishing a tenant
        self._open_retried: set[str] = set()
        self._timeouts_in_a_row = 0

    def cut_short(self, now: float) -> tuple[TenantResult, ...]:
        """Every tenant left, failed, when the deadline passed or the circuit breaker opened; else none."""
        if self.deadline is not None and now >= self.deadline:
            message = DEADLINE_EXCEEDED
        elif self._timeouts_in_a_row >= self.limits.breaker_timeouts:
            message = CIRCUIT_OPEN.format(count=self._timeouts_in_a_row, timeout=self.limits.timeout_seconds)
        else:
            return ()
        return tuple(self.fail(message) for _ in list(self.remaining))

    def watch(self, now: float, started: float, ready_rss: int | None, rss: int | None) -> WorkerWatch:
        """Supervise the next worker for the tenants left: forked at `started`, its memory `ready_rss`
        when its session was ready (None: not ready yet) and `rss` now."""
        return WorkerWatch(self, now, started, ready_rss, rss)

    def worker_stopped(self, left_before: int) -> list[TenantResult]:
        """After a worker stopped following the batch: the tenants that fail because too many workers
        in a row finished none of them."""
        if len(self.remaining) < left_before:
            self._stalls = 0
            return []
        self._stalls += 1
        if self._stalls < self.limits.setup_attempts:
            return []
        return [self.fail(SESSION_NOT_STARTED) for _ in list(self.remaining)]

    def retry_open(self, bucket: str) -> bool:
        """Whether `bucket`, whose database did not open in time, gets one more try in a fresh worker."""
        if bucket in self._open_retried:
            return False
        self._open_retried.add(bucket)
        return True

    def finished(self, outcome: TenantOutcome, rows: bytes | None) -> TenantResult:
        self.remaining.pop(0)
        self._count_timeout(outcome)
        return outcome, rows

    def fail(self, message: str, duration_ms: float = 0.0) -> TenantResult:
        bucket = self.remaining.pop(0)
        outcome = TenantOutcome(bucket=bucket, status="error", duration_ms=duration_ms, message=message)
        self._count_timeout(outcome)
        return outcome, None

    def _count_timeout(self, outcome: TenantOutcome) -> None:
        if outcome.message == timeout_message(self.limits.timeout_seconds):
            self._timeouts_in_a_row += 1
        elif outcome.status == "ok":
            self._timeouts_in_a_row = 0


class WorkerWatch:
    """One worker while it runs (part of) a batch: its stage, since when, and its memory baseline."""

    def __init__(self, batch: BatchSupervisor, now: float, started: float, ready_rss: int | None,
                 rss: int | None) -> None:
        self.batch = batch
        self.limits = batch.limits
        self.ready_rss = ready_rss
        # Growth is measured from the worker's size as the batch starts (or once its session is ready).
        self._baseline = rss if ready_rss is not None else None
        self.stage = Stage.SETUP if ready_rss is None else Stage.BETWEEN
        self.since = started if ready_rss is None else now
        self._tenant_since = self.since

    def received(self, message: WorkerMessage, now: float, rss: Callable[[], int | None]) -> Decision:
        if isinstance(message, Ready):
            self.ready_rss = self._baseline = rss()
            self.stage, self.since = Stage.BETWEEN, now
        elif isinstance(message, TenantStarted):
            self.stage, self.since = Stage.OPENING, now
            self._tenant_since = now
        elif isinstance(message, QueryStarted):
            self.stage, self.since = Stage.QUERYING, now
        elif isinstance(message, TenantDone):
            self.stage, self.since = Stage.BETWEEN, now
            done = self.batch.finished(message.outcome(), message.rows_ipc)
            rest = self.batch.cut_short(now)
            return Decision(results=(done, *rest), kill=bool(rest), stop=bool(rest))
        elif isinstance(message, Fatal):
            failed = tuple(self.batch.fail(message.message) for _ in list(self.batch.remaining))
            return Decision(results=failed, stop=True)
        elif isinstance(message, BatchEnd):
            return Decision(stop=True, reusable=self._grew_little(rss()))
        return FOLLOW

    def resumed(self, now: float) -> None:
        """The batch's caller took the tenants delivered (writing progress, say) until `now`: its time
        is not the worker's."""
        if self.stage is Stage.BETWEEN:
            self.since = now

    def tick(self, now: float, rss: Callable[[], int | None]) -> Decision:
        """A look at the worker while no message came: over a stage's limit, or too big, it is killed."""
        limits, waited = self.limits, now - self.since
        if self.batch.deadline is not None and now >= self.batch.deadline:
            running = ((self._result(now, DEADLINE_EXCEEDED),) if self.stage in (Stage.OPENING, Stage.QUERYING)
                       else ())
            return Decision(results=(*running, *self.batch.cut_short(now)), kill=True, stop=True)
        if self.stage is Stage.SETUP and waited > limits.setup_timeout_seconds:
            return Decision(kill=True, stop=True)  # replaced at no tenant's cost
        if self.stage is Stage.BETWEEN and waited > limits.open_timeout_seconds:
            return Decision(kill=True, stop=True)  # no tenant started: the next one goes to a fresh worker
        if self.stage is Stage.OPENING and waited > limits.open_timeout_seconds:
            if self.batch.retry_open(self.batch.remaining[0]):
                return Decision(kill=True, stop=True)  # the tenant is tried again in a fresh worker
            return self._fail(now, f"Could not open the database within {limits.open_timeout_seconds:g} s")
        if self.stage is Stage.QUERYING and waited > limits.timeout_seconds + limits.kill_grace_seconds:
            return self._fail(now, timeout_message(limits.timeout_seconds))
        if self.stage in (Stage.OPENING, Stage.QUERYING) and self._baseline is not None:
            size = rss()
            if size is not None and size - self._baseline > limits.hard_memory_bytes:
                return self._fail(now, f"Query exceeded the {limits.memory_limit_mb} MB memory limit")
        return FOLLOW

    def ended(self, now: float, exitcode: int | None) -> Decision:
        """The worker's pipe closed (killed from outside, crashed): a tenant it was running fails; between
        tenants, the rest go to a fresh worker at no cost."""
        if self.stage in (Stage.OPENING, Stage.QUERYING):
            return Decision(results=(self._result(now, f"Query process ended unexpectedly (exit code {exitcode})"),),
                            stop=True)
        return Decision(stop=True)

    def _fail(self, now: float, message: str) -> Decision:
        return Decision(results=(self._result(now, message),), kill=True, stop=True)

    def _result(self, now: float, message: str) -> TenantResult:
        return self.batch.fail(message, round((now - self._tenant_since) * 1000, 3))

    def _grew_little(self, rss: int | None) -> bool:
        return (self.ready_rss is not None and rss is not None
                and rss - self.ready_rss <= self.limits.hard_memory_bytes * self.limits.retire_growth)


def timeout_message(timeout_seconds: float) -> str:
    """A tenant's error when its query ran past the per-tenant timeout (the worker's and the supervisor's)."""
    return f"Query exceeded the {timeout_seconds:g} s timeout"
