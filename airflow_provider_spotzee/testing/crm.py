"""A realistic, seeded CRM in SQLite: ``customers`` (~2 % deliberately bad rows) and ``events``.

The rows are dated on one fixed day, :data:`SEED_DAY`, never relative to today: a run reads them only
when its data interval is that day, so the demo, the tests and the benchmarks name the interval
explicitly (:data:`SEED_RUN_DATE` for ``airflow dags test``; ``--from-date``/``--to-date`` of
:data:`SEED_DAY` for ``airflow backfill create``) and get the same rows on any date.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

FIRST = [
    "Jane",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Mia",
    "Lucas",
    "Zoe",
    "Amir",
    "Sofia",
    "Hiro",
    "Chloé",
    "Mateo",
    "Aisha",
    "Ethan",
    "Ngọc",
    "Leah",
    "Oskar",
    "Priya",
    "Tomás",
]
LAST = [
    "Doe",
    "Smith",
    "Nguyen",
    "García",
    "Müller",
    "Kowalski",
    "Tanaka",
    "Okafor",
    "Rossi",
    "Brown",
    "Wilson",
    "Patel",
    "Dubois",
    "Silva",
    "O'Neil",
    "Larsen",
]
PLACES = [
    ("Australia/Sydney", "en-AU", "+614001{:05d}"),
    ("Europe/Berlin", "de-DE", "+49151{:08d}"),
    ("America/New_York", "en-US", "+1212555{:04d}"),
    ("Europe/Paris", "fr-FR", "+3361234{:04d}"),
    ("Asia/Tokyo", "ja-JP", "+8190123{:05d}"),
    ("America/Sao_Paulo", "pt-BR", "+55119876{:05d}"),
]
PLANS = ["free", "pro", "team", "enterprise"]
BAD_KINDS = ("missing_id", "bad_email", "bad_phone", "bad_timezone")

#: The day (UTC) :func:`seed_crm` and :func:`seed_events` fill unless told otherwise.
SEED_DAY = dt.date(2026, 11, 24)


def manual_run_date(day: dt.date = SEED_DAY) -> str:
    """The logical date to give ``airflow dags test`` (or ``DAG.test``) so that a daily data-interval DAG
    (``CronDataIntervalTimetable("0 0 * * *")``) reads ``day``.

    A manual run's data interval is the last complete one *before* its logical date, so ``day + 1`` gives
    ``[day, day + 1)``. A backfill names the interval's start instead:
    ``airflow backfill create --from-date DAY --to-date DAY``.
    """
    return (day + dt.timedelta(days=1)).isoformat()


#: ``airflow dags test DAG_ID 2026-11-25``: data interval [2026-11-24, 2026-11-25), the seeded day.
SEED_RUN_DATE = manual_run_date(SEED_DAY)

SCHEMA = """
CREATE TABLE customers (
    pk INTEGER PRIMARY KEY,
    id TEXT,
    email_address TEXT,
    phone_e164 TEXT,
    locale TEXT,
    timezone TEXT,
    first_name TEXT,
    last_name TEXT,
    plan TEXT,
    updated_at TEXT NOT NULL
)
"""


def seed_crm(
    path: str | Path,
    rows: int = 10_000,
    *,
    day: dt.date = SEED_DAY,
    bad_ratio: float = 0.02,
    seed: int = 7,
) -> dict[str, int]:
    """(Re)create ``customers`` at ``path`` with ``rows`` rows updated during ``day`` (UTC).

    Used by the demo and the tests; also handy for testing your own DAGs offline.

    Returns how many rows of each kind were written (``good`` plus one count per bad kind).
    """
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    counts = {"good": 0, **dict.fromkeys(BAD_KINDS, 0)}
    start = dt.datetime.combine(day, dt.time(0, 0))
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA)
        db.execute("CREATE INDEX customers_cursor ON customers (updated_at, pk)")
        batch = []
        for pk in range(1, rows + 1):
            tz, locale, phone_fmt = PLACES[pk % len(PLACES)]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            row = {
                "pk": pk,
                "id": f"cust-{pk:07d}",
                "email_address": f"{first.lower()}.{last.lower().replace(chr(39), '')}.{pk}@example.com",
                "phone_e164": phone_fmt.format(pk % 10_000),
                "locale": locale,
                "timezone": tz,
                "first_name": first,
                "last_name": last,
                "plan": rng.choice(PLANS),
                # several rows share a second: the cursor must be tie-safe
                "updated_at": (start + dt.timedelta(seconds=int(pk * 86_399 / rows))).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
            }
            kind = "good"
            if rng.random() < bad_ratio:
                kind = rng.choice(BAD_KINDS)
                if kind == "missing_id":
                    row["id"] = rng.choice([None, ""])
                elif kind == "bad_email":
                    row["email_address"] = rng.choice(
                        ["not-an-email", "jane@", "@example.com", "a b@example.com"]
                    )
                elif kind == "bad_phone":
                    row["phone_e164"] = rng.choice(["+999999", "12345", "phone", "+61 4"])
                else:
                    row["timezone"] = rng.choice(["Mars/Olympus_Mons", "GMT+25", "Europe/Atlantis"])
            counts[kind] += 1
            batch.append(row)
            if len(batch) == 5000:
                _insert(db, batch)
                batch = []
        if batch:
            _insert(db, batch)
    return counts


def _insert(db: sqlite3.Connection, rows: list[dict]) -> None:
    columns = list(rows[0])
    db.executemany(
        f"INSERT INTO customers ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [tuple(r[c] for c in columns) for r in rows],
    )


EVENTS_SCHEMA = """
CREATE TABLE events (
    pk INTEGER PRIMARY KEY,
    customer_id TEXT,
    name TEXT,
    value REAL,
    currency TEXT,
    email TEXT,
    occurred_at TEXT NOT NULL
)
"""

EVENT_NAMES = ["product_viewed", "added_to_cart", "order_placed", "newsletter_opened"]


def seed_events(
    path: str | Path,
    rows: int = 5_000,
    *,
    day: dt.date = SEED_DAY,
    days: int = 1,
    customers: int = 1_000,
    bad_ratio: float = 0.01,
    seed: int = 11,
) -> dict[str, int]:
    """(Re)create ``events`` in the database at ``path`` (kept beside ``customers``), spread evenly over
    ``days`` days from ``day`` (UTC). Returns counts per kind (``good`` and the bad kinds)."""
    rng = random.Random(seed)
    counts = {"good": 0, "missing_name": 0, "missing_customer": 0}
    start = dt.datetime.combine(day, dt.time(0, 0))
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS events")
        db.execute(EVENTS_SCHEMA)
        values = []
        for pk in range(1, rows + 1):
            customer: str | None = f"cust-{rng.randint(1, customers):07d}"
            name: str | None = rng.choice(EVENT_NAMES)
            kind = "good"
            if rng.random() < bad_ratio:
                kind = rng.choice(["missing_name", "missing_customer"])
                if kind == "missing_name":
                    name = None
                else:
                    customer = None
            counts[kind] += 1
            offset = int((pk - 1) * 86_400 * days / rows)
            occurred = (start + dt.timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S")
            values.append(
                (
                    pk,
                    customer,
                    name,
                    round(rng.uniform(1, 500), 2),
                    "AUD",
                    f"{customer}@example.com" if customer else None,
                    occurred,
                )
            )
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", values)
    return counts
