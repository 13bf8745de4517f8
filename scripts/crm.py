"""A realistic, seeded CRM ``customers`` table in SQLite, with ~2 % deliberately bad rows."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

FIRST = ["Jane", "Liam", "Olivia", "Noah", "Ava", "Mia", "Lucas", "Zoe", "Amir", "Sofia", "Hiro", "Chloé",
         "Mateo", "Aisha", "Ethan", "Ngọc", "Leah", "Oskar", "Priya", "Tomás"]
LAST = ["Doe", "Smith", "Nguyen", "García", "Müller", "Kowalski", "Tanaka", "Okafor", "Rossi", "Brown",
        "Wilson", "Patel", "Dubois", "Silva", "O'Neil", "Larsen"]
PLACES = [("Australia/Sydney", "en-AU", "+614001{:05d}"), ("Europe/Berlin", "de-DE", "+49151{:08d}"),
          ("America/New_York", "en-US", "+1212555{:04d}"), ("Europe/Paris", "fr-FR", "+3361234{:04d}"),
          ("Asia/Tokyo", "ja-JP", "+8190123{:05d}"), ("America/Sao_Paulo", "pt-BR", "+55119876{:05d}")]
PLANS = ["free", "pro", "team", "enterprise"]
BAD_KINDS = ("missing_id", "bad_email", "bad_phone", "bad_timezone")

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


def seed_crm(path: str | Path, rows: int = 10_000, *, day: dt.date = dt.date(2026, 11, 24), bad_ratio: float = 0.02,
             seed: int = 7) -> dict[str, int]:
    """(Re)create ``customers`` at ``path`` with ``rows`` rows updated during ``day`` (UTC).

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
                "pk": pk, "id": f"cust-{pk:07d}",
                "email_address": f"{first.lower()}.{last.lower().replace(chr(39), '')}.{pk}@example.com",
                "phone_e164": phone_fmt.format(pk % 10_000), "locale": locale, "timezone": tz,
                "first_name": first, "last_name": last, "plan": rng.choice(PLANS),
                # several rows share a second: the cursor must be tie-safe
                "updated_at": (start + dt.timedelta(seconds=int(pk * 86_399 / rows))).strftime("%Y-%m-%d %H:%M:%S"),
            }
            kind = "good"
            if rng.random() < bad_ratio:
                kind = rng.choice(BAD_KINDS)
                if kind == "missing_id":
                    row["id"] = rng.choice([None, ""])
                elif kind == "bad_email":
                    row["email_address"] = rng.choice(["not-an-email", "jane@", "@example.com", "a b@example.com"])
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
    db.executemany(f"INSERT INTO customers ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                   [tuple(r[c] for c in columns) for r in rows])
