"""Checking a batch's partial results against its summary before they are merged.

Each tenant's row count is recorded in the batch summary when its query ends; the partials hold the rows,
labelled with `_bucket`. A tenant whose rows in the partials do not number what was recorded (a partial
cut short, doubled, or mixed up) is reported errored and its rows are left out: a wrong answer is never
merged into the job's result."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from queryall.models.workflow import TenantOutcome

BUCKET_COLUMN = "_bucket"


def verified_partials(
    outcomes: list[TenantOutcome], tables: list[pa.Table]
) -> tuple[list[TenantOutcome], list[pa.Table]]:
    """The outcomes, with each tenant whose partial rows disagree with its count turned into an error, and
    the tables without those tenants' rows (nor rows of a tenant the batch did not report as queried)."""
    found: Counter[str] = Counter()
    for table in tables:
        counts = pc.value_counts(table.column(BUCKET_COLUMN)).to_pylist()
        found.update({entry["values"]: entry["counts"] for entry in counts})
    expected = {o.bucket: o.rows for o in outcomes if o.status == "ok"}
    bad = {bucket for bucket in found.keys() | expected.keys() if found[bucket] != expected.get(bucket, 0)}
    if not bad:
        return outcomes, tables
    checked = [
        o.model_copy(update={"status": "error", "message": (
            f"Partial result failed verification: {o.rows} rows recorded, {found[o.bucket]} in the partial; "
            "not merged")})
        if o.bucket in bad and o.status == "ok" else o
        for o in outcomes
    ]
    dropped = pa.array(sorted(bad), pa.string())
    kept = [table.filter(pc.invert(pc.is_in(table.column(BUCKET_COLUMN), value_set=dropped))) for table in tables]
    return checked, kept
