"""The contact store: upsert with identity linking, lookups, subscription state and keyset listing.

Contacts are slotted objects indexed by id, external_id and every anonymous_id ever linked to them.
Listing uses two append-only order indexes (by id, and by update sequence for ``updated_at``) whose
superseded entries are skipped and compacted lazily, so a page costs O(log n + page) even with a
million contacts, and cursors stay stable across inserts, updates and merges.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import msgspec

from airflow_provider_spotzee.validation import PARAMETER_INVALID_FORMAT, FieldError

PROFILE_FIELDS = ("email", "phone", "timezone", "locale")

SORT_FIELDS = ("id", "created_at", "updated_at")


class ContactView(msgspec.Struct, gc=False):
    """A contact as the API shows it: these keys, in this order. Written straight to JSON by msgspec (a
    quarter of what building and writing a dict costs) and not tracked by the garbage collector (a view
    holds no cycle; an answer of 100 contacts makes 100 of them)."""

    id: int
    project_id: int
    external_id: str | None
    created_at: str
    updated_at: str
    anonymous_id: str | None
    email: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    data: dict[str, Any]
    has_push_device: bool
    devices: list[Any]
    subscriptions: dict[str, int]


class Contact(msgspec.Struct, gc=False, eq=False):
    """A stored contact (compared by identity). Not tracked by the cyclic garbage collector: it holds only
    text, numbers and JSON trees, so no cycle can run through it, and a store of many contacts would
    otherwise be walked by every full collection."""

    id: int
    external_id: str | None
    anonymous_id: str | None
    created_at: str
    updated_at: str
    anon_ids: list[str] | None = None  # every linked anonymous id, once there is more than one
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    subscriptions: dict[int, int] | None = None
    useq: int = 0
    upserts: int = 0

    def view(self, project_id: int) -> ContactView:
        """The contact as the API shows it now (its own copy of ``data``: a later write in the same request
        does not change an answer already made)."""
        subs = self.subscriptions
        return ContactView(
            self.id,
            project_id,
            self.external_id,
            self.created_at,
            self.updated_at,
            self.anonymous_id,
            self.email,
            self.phone,
            self.timezone,
            self.locale,
            dict(self.data),
            False,
            [],
            {str(k): v for k, v in subs.items()} if subs else {},
        )

    def to_dict(self, project_id: int) -> dict[str, Any]:
        """:meth:`view` as a plain dict (same keys, same order)."""
        return msgspec.structs.asdict(self.view(project_id))

    def matches(self, q: str) -> bool:
        for value in (self.external_id, self.email, self.phone, self.anonymous_id):
            if value is not None and q in value.lower():
                return True
        return False


class _OrderIndex:
    """(seq, contact id) pairs in ascending seq order; entries may be stale (skipped, compacted later)."""

    __slots__ = ("ids", "seqs", "stale")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.ids: list[int] = []
        self.stale = 0

    def append(self, seq: int, cid: int) -> None:
        self.seqs.append(seq)
        self.ids.append(cid)

    def compact_if_needed(self, by_id: dict[int, Contact], updates: bool) -> None:
        """Drop the stale entries once they are over half of the index (amortised O(1) per entry): an
        entry lives while its contact does (and, in the ``updates`` index, while its seq is the contact's
        latest). Only positions are collected (ints, no tuples that would wake the garbage collector)."""
        if self.stale > 1024 and self.stale * 2 > len(self.seqs):
            seqs, ids, get = self.seqs, self.ids, by_id.get
            if updates:
                keep = [k for k, cid in enumerate(ids) if (c := get(cid)) is not None and c.useq == seqs[k]]
            else:
                keep = [k for k, cid in enumerate(ids) if cid in by_id]
            self.seqs = [seqs[k] for k in keep]
            self.ids = [ids[k] for k in keep]
            self.stale = 0


class ContactStore:
    def __init__(self) -> None:
        self.by_id: dict[int, Contact] = {}
        self.by_external: dict[str, Contact] = {}
        self.by_anonymous: dict[str, Contact] = {}
        self._next_id = 1
        self._useq = 0
        self._id_index = _OrderIndex()
        self._upd_index = _OrderIndex()
        # ledger counters, kept incrementally so the summary is O(1)
        self.created = 0
        self.merges = 0
        self.upsert_applications = 0
        self.upserted_more_than_once = 0

    def __len__(self) -> int:
        return len(self.by_id)

    # -- lookups -------------------------------------------------------------------------------------
    def find(self, external_id: str | None, anonymous_id: str | None) -> Contact | None:
        """The contact for an identity: external_id first, then anonymous_id."""
        if external_id is not None:
            c = self.by_external.get(external_id)
            if c is not None:
                return c
        if anonymous_id is not None:
            return self.by_anonymous.get(anonymous_id)
        return None

    def resolve(self, user_id: str, numeric_first: bool = False) -> Contact | None:
        """``{userId}`` in a path: an external_id, else (ASCII digits only) a numeric contact id. With
        ``numeric_first`` an all-digit ``userId`` is read as a numeric id first, then as an external_id."""
        numeric = user_id.isascii() and user_id.isdigit() and len(user_id) < 19
        if numeric_first and numeric:
            c = self.by_id.get(int(user_id))
            return c if c is not None else self.by_external.get(user_id)
        c = self.by_external.get(user_id)
        if c is None and numeric:
            c = self.by_id.get(int(user_id))
        return c

    # -- writes --------------------------------------------------------------------------------------
    def _create(self, external_id: str | None, anonymous_id: str | None, ts: str) -> Contact:
        c = Contact(self._next_id, external_id, anonymous_id, ts, ts)
        self._next_id += 1
        self.by_id[c.id] = c
        if external_id is not None:
            self.by_external[external_id] = c
        if anonymous_id is not None:
            self.by_anonymous[anonymous_id] = c
        self._id_index.append(c.id, c.id)
        self.created += 1
        return c

    def _link_anonymous(self, c: Contact, anonymous_id: str) -> None:
        """Make ``anonymous_id`` the contact's current anonymous id; earlier ones keep resolving to it."""
        if c.anonymous_id is not None and c.anonymous_id != anonymous_id:
            if c.anon_ids is None:
                c.anon_ids = [c.anonymous_id]
            if anonymous_id not in c.anon_ids:
                c.anon_ids.append(anonymous_id)
        c.anonymous_id = anonymous_id
        self.by_anonymous[anonymous_id] = c

    def _merge(self, src: Contact, dst: Contact) -> None:
        """Fold an anonymous-only contact into an identified one (dst's own values win)."""
        src_ids = src.anon_ids or ([src.anonymous_id] if src.anonymous_id else [])
        for anon in src_ids:
            self.by_anonymous[anon] = dst
        linked = dst.anon_ids or ([dst.anonymous_id] if dst.anonymous_id else [])
        linked = linked + [anon for anon in src_ids if anon not in linked]
        if dst.anonymous_id is None:
            dst.anonymous_id = src.anonymous_id
        dst.anon_ids = linked if len(linked) > 1 else None
        for name in PROFILE_FIELDS:
            if getattr(dst, name) is None:
                setattr(dst, name, getattr(src, name))
        if src.data:
            merged = dict(src.data)
            merged.update(dst.data)
            dst.data = merged
        if src.subscriptions:
            if dst.subscriptions is None:
                dst.subscriptions = {}
            for sid, state in src.subscriptions.items():
                dst.subscriptions.setdefault(sid, state)
        if src.upserts:
            before = (src.upserts > 1) + (dst.upserts > 1)
            dst.upserts += src.upserts
            self.upserted_more_than_once += (dst.upserts > 1) - before
        del self.by_id[src.id]
        self._id_index.stale += 1
        self._upd_index.stale += 1
        self.merges += 1

    def identify(self, external_id: str | None, anonymous_id: str | None, ts: str) -> tuple[Contact, bool]:
        """Find or create the contact for an identity, linking the two ids when both are given.

        Returns ``(contact, changed)``; ``changed`` is true when the contact was created or linked.
        Raises :class:`FieldError` when ``anonymous_id`` already belongs to a contact with another
        external_id (the item is then rejected, nothing is changed).
        """
        c = self.by_external.get(external_id) if external_id is not None else None
        a = self.by_anonymous.get(anonymous_id) if anonymous_id is not None else None
        if external_id is not None and a is not None and a is not c and a.external_id is not None:
            raise FieldError(
                "anonymous_id",
                PARAMETER_INVALID_FORMAT,
                "is already linked to a contact with a different external_id",
            )
        if c is not None:
            changed = False
            if a is not None and a is not c:
                self._merge(a, c)
                changed = True
            elif a is None and anonymous_id is not None:  # a new anonymous id for a known contact
                self._link_anonymous(c, anonymous_id)
                changed = True
            return c, changed
        if external_id is not None:
            if a is not None:  # an anonymous-only contact gets the external_id
                a.external_id = external_id
                self.by_external[external_id] = a
                return a, True
            return self._create(external_id, anonymous_id, ts), True
        if a is not None:
            return a, False
        return self._create(None, anonymous_id, ts), True

    @staticmethod
    def apply_profile(c: Contact, profile: dict[str, Any] | None, data: dict[str, Any] | None) -> bool:
        """Set the given first-class fields and shallow-merge ``data``. Returns whether anything was given."""
        touched = False
        if profile:
            for name, value in profile.items():
                setattr(c, name, value)
            touched = True
        if data:
            c.data.update(data)
            touched = True
        return touched

    def touch(self, c: Contact, ts: str) -> None:
        c.updated_at = ts
        index = self._upd_index
        if c.useq:
            index.stale += 1
        self._useq += 1
        c.useq = self._useq
        index.seqs.append(self._useq)
        index.ids.append(c.id)
        if index.stale > 1024 and index.stale * 2 > len(index.seqs):  # (checked here: no call per touch)
            index.compact_if_needed(self.by_id, True)

    def count_upsert(self, c: Contact) -> None:
        c.upserts += 1
        self.upsert_applications += 1
        if c.upserts == 2:
            self.upserted_more_than_once += 1

    def set_subscription(self, c: Contact, subscription_id: int, state: int) -> int | None:
        """Set one state; returns the previous one (``None`` when the contact had none)."""
        if c.subscriptions is None:
            c.subscriptions = {}
        previous = c.subscriptions.get(subscription_id)
        c.subscriptions[subscription_id] = state
        return previous

    # -- listing -------------------------------------------------------------------------------------
    def _live_id(self, seq: int, cid: int) -> Contact | None:
        return self.by_id.get(cid)

    def _live_upd(self, seq: int, cid: int) -> Contact | None:
        c = self.by_id.get(cid)
        return c if c is not None and c.useq == seq else None

    def sort_seq(self, c: Contact, field: str) -> int:
        return c.useq if field == "updated_at" else c.id

    def scan(
        self,
        field: str,
        descending: bool,
        position: int | None,
        backward: bool,
        limit: int,
        q: str | None,
    ) -> tuple[list[Contact], bool]:
        """Up to ``limit`` contacts after (or, ``backward``, before) ``position`` in sort order, returned
        in sort order, plus whether more exist in that direction."""
        if field == "updated_at":
            index, live = self._upd_index, self._live_upd
        else:
            index, live = self._id_index, self._live_id
        index.compact_if_needed(self.by_id, field == "updated_at")
        seqs, ids = index.seqs, index.ids
        up = descending == backward  # walk the ascending index upwards?
        if position is None:
            i = 0 if up else len(seqs) - 1
        elif up:
            i = bisect_right(seqs, position)
        else:
            i = bisect_left(seqs, position) - 1
        step = 1 if up else -1
        n = len(seqs)
        out: list[Contact] = []
        while 0 <= i < n and len(out) <= limit:
            c = live(seqs[i], ids[i])
            if c is not None and (q is None or c.matches(q)):
                out.append(c)
            i += step
        more = len(out) > limit
        del out[limit:]
        if backward:
            out.reverse()
        return out, more

    def count(self, q: str | None) -> int:
        if q is None:
            return len(self.by_id)
        return sum(1 for c in self.by_id.values() if c.matches(q))
