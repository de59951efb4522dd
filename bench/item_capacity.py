"""How many rows the completed job item keeps under its 400 KB budget: plain JSON text (the previous
encoding) against bzip2-compressed JSON (the item's encoding now), plus gzip for reference.

Two synthetic results, generated deterministically:

* narrow: ``_bucket`` and a count (``SELECT count(*) ...`` over many tenants), 200,000 rows;
* wide: a CRM-like contact list, 12 columns, text-heavy (names, email, phone, company, title, city,
  country, status, created_at, lifetime value, free-text notes drawn from a few hundred English words
  with a Zipf distribution, as real notes are), 30,000 rows.

The compressed figure is what ``completed_item`` keeps; when the rows also meet the poll response's
5 MB bound, that limit is named. Run: ``.venv/bin/python bench/item_capacity.py``.
"""

from __future__ import annotations

import gzip
import json
import random
import time

import pyarrow as pa

from queryall.logic.aggregation import CombinedResult, _item_without_rows, completed_item
from queryall.logic.item_fit import ITEM_BUDGET, fit_row_prefix, item_size
from queryall.logic.json_rows import table_to_json_rows
from queryall.models.job import Job, JobRequest, JobStatus
from queryall.models.workflow import TenantOutcome

# Words of CRM notes (the first ones the most frequent after shuffling, by a Zipf law).
VOCABULARY = """
the a to and of in for on with is that this we it be as at by from they will our you not are have has was call
email meeting follow up customer renewal contract price pricing discount quote proposal demo trial onboarding
support ticket issue bug feature request integration api dashboard report export invoice payment billing plan
upgrade downgrade seat seats license annual monthly budget approval legal security review procurement
stakeholder champion decision maker timeline quarter next week month team sales account manager engineering
product marketing success churn risk expansion opportunity pipeline stage closed won lost competitor
evaluation requirements scope migration data import sso admin users training webinar feedback survey
satisfaction escalation urgent priority blocked waiting response sent signed draft revised terms agreement
pilot rollout deployment region europe north america asia latency uptime outage incident resolved workaround
documentation question answer asked mentioned interested concerned happy unhappy positive negative neutral
reached out left voicemail scheduled rescheduled cancelled confirmed attended missed notes summary action
items owner due date reminder check in discussed agreed prefers phone slack chat onsite visit conference lunch
referral partner reseller channel volume usage limit overage credit refund tax vat po number vendor form w9
nda msa sow renewal auto manual process workflow automation reporting analytics insights growth revenue cost
savings roi value case study reference logo quote testimonial executive sponsor cfo cto ceo vp director lead
"""
WORDS = VOCABULARY.split()
FIRST = ["Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Hedy",
         "John", "Karen", "Tim", "Radia", "Guido", "Sofia", "Mateo", "Amara", "Yuki", "Lars", "Ingrid", "Omar",
         "Priya", "Chen", "Fatima", "Diego", "Elena", "Kwame", "Noor", "Ana", "Luca", "Mia", "Noah", "Zoe"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
        "Dijkstra", "Lamarr", "McCarthy", "Jones", "Berners-Lee", "Perlman", "van Rossum", "García", "Silva",
        "Okafor", "Tanaka", "Nilsson", "Berg", "Haddad", "Sharma", "Wang", "O'Brien", "Müller", "Rossi"]
CITIES = ["Stockholm", "Oslo", "Berlin", "Paris", "Lagos", "Tokyo", "São Paulo", "Toronto", "Austin",
          "Bengaluru", "Madrid", "Milan", "Sydney", "London", "Chicago", "Seattle", "Nairobi", "Seoul"]
TITLES = ["CEO", "CTO", "VP Sales", "Head of Data", "Engineer", "Account Executive", "Office Manager",
          "Procurement Lead", "Product Manager", "Analyst"]
STATUSES = ["lead", "prospect", "customer", "churned", "partner"]
NARROW_ROWS = 200_000
WIDE_ROWS = 30_000


def narrow_table(rng: random.Random) -> pa.Table:
    return pa.table({
        "_bucket": [f"tenant_{i // 20:05d}" for i in range(NARROW_ROWS)],
        "total": pa.array([rng.randint(0, 250_000) for _ in range(NARROW_ROWS)], pa.int64()),
    })


def wide_table(rng: random.Random) -> pa.Table:
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    words = WORDS[:]
    rng.shuffle(words)
    companies = [f"{rng.choice(words).title()} {rng.choice(words).title()} {rng.choice(['Inc', 'AB', 'GmbH', 'Ltd'])}"
                 for _ in range(400)]
    columns: dict[str, list] = {name: [] for name in (
        "_bucket", "id", "first_name", "last_name", "email", "phone", "company", "title", "city", "status",
        "lifetime_value", "notes")}
    for i in range(WIDE_ROWS):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(companies)
        columns["_bucket"].append(f"tenant_{i // 300:04d}")
        columns["id"].append(i % 300 + 1)
        columns["first_name"].append(first)
        columns["last_name"].append(last)
        columns["email"].append(f"{first.lower()}.{last.lower().replace(' ', '')}{rng.randint(1, 999)}@"
                                f"{company.split()[0].lower()}.example")
        columns["phone"].append(f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}")
        columns["company"].append(company)
        columns["title"].append(rng.choice(TITLES))
        columns["city"].append(rng.choice(CITIES))
        columns["status"].append(rng.choice(STATUSES))
        columns["lifetime_value"].append(f"{rng.randint(0, 5_000_000) / 100:.2f}")
        columns["notes"].append(" ".join(rng.choices(words, weights, k=rng.randint(12, 60))).capitalize() + ".")
    table = pa.table(columns)
    return table.set_column(10, "lifetime_value", table.column("lifetime_value").cast(pa.decimal128(12, 2)))


def _job() -> Job:
    return Job(job_id="503a73be-9119-43ba-8e30-4f278f978d49", status=JobStatus.PROCESSING, owner="key:0123456789abcdef",
               created_at="2026-01-01T00:00:00.000Z", submitted_at=1_767_225_600.0, expires_at=1_767_229_200,
               request=JobRequest(sql="SELECT ...", limit=1000))


def _gzip_rows(row_texts: list[str], room: int) -> int:
    """Rows a single gzip stream keeps in ``room`` bytes (bisection; for reference only)."""
    lo, hi = 0, len(row_texts) + 1
    while hi - lo > 1:
        middle = (lo + hi) // 2
        size = len(gzip.compress(("[" + ",".join(row_texts[:middle]) + "]").encode(), 9, mtime=0))
        lo, hi = (middle, hi) if size <= room else (lo, middle)
    return lo


def measure(name: str, table: pa.Table) -> float:
    job = _job()
    result = CombinedResult([TenantOutcome(bucket=b, status="ok") for b in sorted(set(table.column(0).to_pylist()))],
                            table)
    columns = json.dumps(result.columns, separators=(",", ":"), ensure_ascii=False)
    row_texts = table_to_json_rows(table)
    base = _item_without_rows(job, columns, result.meta(1.0, table.num_rows), 0.0)
    plain = fit_row_prefix(row_texts, base, "rows", ITEM_BUDGET)
    gzipped = _gzip_rows(row_texts, ITEM_BUDGET - item_size(base) - len("rows_bz2"))
    started = time.perf_counter()
    item = completed_item(job, result, 1.0, 0.0)
    seconds = time.perf_counter() - started
    kept = item.meta["returned_rows"]
    text_bytes = len(("[" + ",".join(row_texts[:kept]) + "]").encode())
    limit = ("every row" if kept == table.num_rows else
             "item budget" if len(item.rows_bz2) > ITEM_BUDGET - item_size(base) - 2000 else "5 MB response bound")
    print(f"{name}: {table.num_columns} columns, {table.num_rows:,} rows, "
          f"{sum(len(r.encode()) + 1 for r in row_texts) / table.num_rows:.0f} bytes of JSON per row")
    print(f"  plain JSON       {plain:>9,} rows")
    print(f"  gzip -9 JSON     {gzipped:>9,} rows  ({gzipped / plain:.1f}x, reference)")
    print(f"  bzip2 JSON (new) {kept:>9,} rows  ({kept / plain:.1f}x; {len(item.rows_bz2):,} bytes holding "
          f"{text_bytes:,} bytes of JSON; limited by: {limit}; fitted in {seconds:.2f} s)")
    return kept / plain


def main() -> None:
    rng = random.Random(20260101)
    measure("narrow", narrow_table(rng))
    ratio = measure("wide CRM-like", wide_table(rng))
    print(f"wide ratio (bzip2 rows / plain JSON rows): {ratio:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
