"""Quotas per principal: jobs running at once and submits per minute (429 with Retry-After beyond).

A job's running slot is given back when the job has ended, however it ended (completed, failed,
cancelled, its workflow stopped or timed out, or simply expired): when a principal is at its limit, the
slots of its jobs that are no longer processing are released and the slot is tried again. Nothing on the
workflow's side has to remember to release, so no way of ending can leak a slot.
Bootstrap keys (the operator's own, in SSM) have no quotas.
"""

from __future__ import annotations

from pydantic import BaseModel

from queryall.dal.jobs import JobStore
from queryall.dal.quotas import QuotaStore
from queryall.errors import RateLimited
from queryall.models.job import JobStatus
from queryall.models.principal import CredentialKind, Principal

# A slot frees when some job ends; a few seconds is a fair time to come back.
RUNNING_RETRY_AFTER_SECONDS = 5


class QuotaDefaults(BaseModel):
    max_running: int
    rate_per_minute: int


def admit_submit(principal: Principal, job_id: str, now: float, *, quotas: QuotaStore, jobs: JobStore,
                 defaults: QuotaDefaults) -> None:
    """Count this submit and give job `job_id` a running slot, or raise RateLimited."""
    if principal.kind is CredentialKind.BOOTSTRAP_KEY:
        return
    rate = principal.rate_per_minute or defaults.rate_per_minute
    minute = int(now // 60)
    if not quotas.count_submit(principal.owner, minute, rate):
        raise RateLimited(f"Rate limit reached: at most {rate} submits per minute", retry_after=60 - int(now % 60))
    limit = principal.max_running or defaults.max_running
    if quotas.take_running_slot(principal.owner, job_id, limit):
        return
    _release_ended(principal.owner, now, quotas, jobs)
    if not quotas.take_running_slot(principal.owner, job_id, limit):
        raise RateLimited(f"Limit reached: at most {limit} running jobs at once",
                          retry_after=RUNNING_RETRY_AFTER_SECONDS)


def _release_ended(owner: str, now: float, quotas: QuotaStore, jobs: JobStore) -> None:
    held = quotas.running_jobs(owner)
    found = jobs.get_many(sorted(held), summary=True) if held else {}
    ended = {job_id for job_id in held
             if job_id not in found or found[job_id].status is not JobStatus.PROCESSING
             or found[job_id].is_expired(now)}
    quotas.release_running_slots(owner, ended)
