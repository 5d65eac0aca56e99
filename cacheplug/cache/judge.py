"""The one freshness judge: may this entry be served?

:meth:`Judge.verdict` decides it for every entry the cache reads, in memory or from a shared
tier, and returns a :class:`Verdict`. An entry is fresh while it has not expired by the
cache's clock, it was judged against this incarnation of the version store (shared tiers),
it is not older than the cache's cutoff (set when an invalidation could not be recorded) and
no tag it carries was invalidated after the sequence number ``seq`` it was last checked at.
While an invalidation is *owed* (it could not be recorded: :attr:`Judge.owed`), nothing is
read from a shared tier at all (``cacheplug.cache.tiering``): other processes, which never
heard of it, may have stored values computed from what it made stale.

Freshness policies (``stale_ttl=``, ``stale_if_error=``, ``early_refresh=``) are judged here
too, from the entry alone (its windows travel with it through every tier), in two halves:
*timeliness* (:meth:`Judge.lateness`, only for an entry at or past its ``deadline``) and
*validity* (:meth:`Judge.valid`). An entry past ``refresh_from`` (its ``deadline``) but
before its expiry is ``REFRESH`` when the XFetch draw says so (Vattani et al., VLDB 2015:
``now - δ·β·ln(rand()) >= expiry``), else ``FRESH``; after its expiry it is ``STALE`` within
``stale_ttl``, ``FALLBACK`` within ``stale_if_error``, then ``EXPIRED``. Validity comes
first whatever the timeliness: an invalidated entry is ``INVALIDATED``, never served stale.

The generated fast path of ``@cached`` (``cacheplug.fastpath``) is the judge's only other
copy, for memory entries: ``deadline > now`` and ``seq == epoch`` or the function's
shortcut (:meth:`Judge.advance`), else :meth:`Judge.recheck_in`. An entry past its
deadline is left to the judge (a function with freshness options sends it through the
compute flow). A test drives both over one table of cases (tests/test_judge.py).

Checking is O(1) per read while nothing was invalidated (one comparison with the epoch),
and O(invalidations since) once per function and epoch move otherwise (``advance``), never
a scan of the cache.
"""

from __future__ import annotations

import enum
import math
import random as _random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .. import invalidation as inv
from ..envelope import Entry
from ..versions import Versions, fresh

if TYPE_CHECKING:
    from .calls import Binding

__all__ = ["KEPT", "LATE", "Judge", "Verdict"]


class Verdict(enum.Enum):
    """What the judge says of an entry.

    ``FRESH`` and ``REFRESH`` are served as hits (``REFRESH``: and recomputed in the
    background, ahead of expiry); ``STALE`` is served while it is refreshed in the
    background; ``FALLBACK`` is served only if recomputing it raises; the others are not
    served (an expired, invalidated or unjudgeable entry is a miss).
    """

    FRESH = "fresh"
    REFRESH = "refresh"  # fresh, and the XFetch draw says: recompute it ahead of expiry
    STALE = "stale"  # expired, within stale_ttl: serve it while one refresh runs
    FALLBACK = "fallback"  # expired, within stale_if_error: serve it if recomputing raises
    EXPIRED = "expired"
    INVALIDATED = "invalidated"
    UNKNOWN = "unknown"  # the version store could not be read: nothing can be trusted


FRESH, EXPIRED, INVALIDATED, UNKNOWN = Verdict.FRESH, Verdict.EXPIRED, Verdict.INVALIDATED, Verdict.UNKNOWN
REFRESH, STALE, FALLBACK = Verdict.REFRESH, Verdict.STALE, Verdict.FALLBACK
_BEFORE_ALL = float("-inf")
# Verdicts the compute flow acts on beyond serving (a refresh, a stale value, a fallback).
LATE = frozenset({REFRESH, STALE, FALLBACK})
# Verdicts whose entry a tier keeps (its ttl plus its stale windows, unless invalidated).
KEPT = frozenset({FRESH, *LATE})


class Judge:
    """The freshness state of one cache: its version store, epoch and cutoff."""

    def __init__(
        self,
        versions: Versions,
        skey_of: Callable[[Entry], str],
        on_fault: Callable[[str, str, BaseException], None],
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.versions = versions
        # The XFetch draw's source of floats in [0, 1) (``Cache(random=...)``: seeded in tests).
        self.random = random
        # ``epoch[0]``: the store's current sequence number (a list shared with the store).
        self.epoch: list[int] = versions.epoch
        # Entries created before this (cache clock) are never fresh in this process.
        self.cutoff = float("-inf")
        # Version tags of invalidations this process could not record for the host: until
        # they are, no shared tier is read (see cacheplug.cache.invalidating).
        self.owed: set[str] = set()
        self._skey_of = skey_of
        self._on_fault = on_fault

    def rebase(self, versions: Versions) -> None:
        """Judge against another version store from now on (reopened or recovered)."""
        self.versions = versions
        self.epoch = versions.epoch

    # -- the verdict ------------------------------------------------------------------------

    def verdict(self, entry: Entry, now: float, shared: bool = False) -> Verdict:
        """Whether and how ``entry`` may be served at ``now``. ``shared``: read from a shared tier.

        A valid entry re-checked after the epoch moved has its ``seq`` advanced, so the next
        read of it costs one comparison again. Past its deadline, :meth:`lateness` decides
        (the XFetch draw included); an invalid entry is never served, stale or not.
        """
        if entry.deadline > now:
            timely = FRESH
        else:
            timely = self.lateness(entry, now)
            if timely is EXPIRED:
                return EXPIRED
        if shared and entry.incarnation != self.versions.incarnation:
            return INVALIDATED  # judged against a store that has been rebuilt since
        if entry.created < self.cutoff:
            return INVALIDATED
        if entry.seq == self.epoch[0]:
            return timely
        checked = self.recheck(entry)
        return timely if checked is FRESH else checked

    def lateness(self, entry: Entry, now: float) -> Verdict:
        """How late an entry at or past its ``deadline`` is (timeliness only, not validity).

        Before its expiry (past ``refresh_from``): ``REFRESH`` when XFetch's draw
        ``now - δ·β·ln(rand()) >= expiry`` says so, else ``FRESH``; a random number is drawn
        only here, so a hit before ``refresh_from`` draws none. After its expiry: ``STALE``
        within ``stale_until``, ``FALLBACK`` within ``error_until``, else ``EXPIRED``.
        """
        expires = entry.expires
        if expires is None:
            return FRESH  # never expires (its deadline is +inf: not reached)
        if now < expires:
            ahead = (expires - entry.deadline) / 10  # δ·β, from refresh_from = expiry - 10·δ·β
            # 1 - random() is in (0, 1]: its logarithm is finite and <= 0.
            return REFRESH if now - ahead * math.log(1.0 - self.random()) >= expires else FRESH
        if now < entry.stale_until:
            return STALE
        if now < entry.error_until:
            return FALLBACK
        return EXPIRED

    def valid(self, entry: Entry, shared: bool = False) -> Verdict:
        """``FRESH`` if nothing made ``entry`` invalid (expiry aside), else ``INVALIDATED`` or ``UNKNOWN``."""
        return self.verdict(entry, _BEFORE_ALL, shared)  # every entry is timely before all time

    def live(self, entry: Entry, now: float, shared: bool = False) -> bool:
        """Whether an entry's value is fresh (``FRESH`` or ``REFRESH``), without a draw."""
        if entry.deadline <= now:  # at or past its deadline: fresh only before its expiry
            expires = entry.expires
            if expires is None or expires <= now:
                return False
        return self.valid(entry, shared) is FRESH

    def kept(self, entry: Entry, now: float, shared: bool = False) -> bool:
        """Whether a tier keeps ``entry``: valid, and within its ttl or one of its stale windows."""
        if entry.deadline <= now:
            expires = entry.expires
            if expires is None or max(expires, entry.stale_until, entry.error_until) <= now:
                return False
        return self.valid(entry, shared) is FRESH

    def recheck(self, entry: Entry) -> Verdict:
        """An entry whose ``seq`` is behind the epoch: was any of its tags invalidated?"""
        current = self.sync()
        if current is None:
            return UNKNOWN
        seq = entry.seq
        versions = self.versions
        if seq < versions.floor:
            return INVALIDATED
        recent = versions.recent
        gap = current - seq
        if 0 < gap <= len(recent) and recent[-1][0] == current and recent[-gap][0] == seq + 1:
            # A few invalidations since the entry was checked: one set operation each.
            tags = entry.tags
            key = inv.key_tag(self._skey_of(entry)) if versions.keyed else None
            for _, invalidated in recent[-gap:]:
                if not invalidated.isdisjoint(tags) or key in invalidated:
                    return INVALIDATED
        elif not self.untouched_since(seq, entry.tags, self._skey_of(entry) if versions.keyed else None):
            return INVALIDATED
        entry.seq = current
        return FRESH

    def sync(self) -> int | None:
        """Catch up with the host's invalidations; ``None`` (a counted fault) if that fails."""
        try:
            return self.versions.sync()
        except Exception as exc:
            self._on_fault("versions", "sync", exc)
            return None

    def untouched_since(self, seq: int, tags: Iterable[str], skey: str | None) -> bool:
        """No tag in ``tags`` nor the key ``skey`` was invalidated after ``seq``."""
        versions = self.versions
        mirror = versions.mirror  # before the floor: a fold raises the floor, then swaps the mirror
        if seq < versions.floor or not fresh(mirror, tags, seq):
            return False
        return skey is None or not versions.keyed or mirror.get(inv.key_tag(skey), 0) <= seq

    # -- the per-function shortcut (what the fast path reads) -------------------------------

    def recheck_in(self, binding: Binding, entry: Entry) -> bool:
        """The fast path's check after the epoch moved: advance the function's shortcut, then
        accept the entry if no relevant invalidation came after it, else check its tags."""
        current = self.sync()
        if current is None:
            return False
        shortcut = binding.fresh
        if shortcut[1] != current:
            self.advance(binding, current)
        if shortcut[1] == current and entry.seq >= shortcut[0]:
            entry.seq = current
            return True
        return self.recheck(entry) is FRESH

    def advance(self, binding: Binding, current: int) -> None:
        """Look at the invalidations since the binding was last checked, once per epoch move.

        O(invalidations since) per function, not per entry: afterwards every entry of the
        function that no relevant invalidation reached is accepted by one comparison.
        """
        versions = self.versions
        with binding.lock:
            shortcut = binding.fresh
            checked, since = shortcut[1], shortcut[0]
            if checked >= current:
                return
            recent = versions.recent
            signature = binding.signature
            if (
                signature is None
                or checked < 0
                or not recent
                or recent[-1][0] < current
                or recent[0][0] > checked + 1
            ):
                since = current  # cannot tell: every entry older than now gets its own check
            else:
                prefix = binding.key_prefix
                for seq, tags in recent:
                    if checked < seq <= current and (
                        not signature.isdisjoint(tags) or any(t.startswith(prefix) for t in tags)
                    ):
                        since = seq
            since = max(since, versions.floor)
            shortcut[0] = since  # first: a reader that sees the new ``checked`` sees this too
            shortcut[1] = current

    @staticmethod
    def covered(signature: frozenset[str], tags: Iterable[str]) -> bool:
        """Can every invalidation that reaches ``tags`` be seen through ``signature``?"""
        for tag in tags:
            if tag in signature:
                continue
            if tag.startswith("\x00") or signature.isdisjoint(inv.families(tag)):
                return False
        return True

    @staticmethod
    def unshortcut(binding: Binding) -> None:
        """The function's entries may now carry tags outside its signature (captured deps)."""
        with binding.lock:
            binding.signature = None
            binding.fresh[1] = -1

    @staticmethod
    def forget(binding: Binding) -> None:
        """Drop the binding's shortcut: its judgements were made against another store."""
        shortcut = binding.fresh
        shortcut[1] = -1  # "checked" first: a reader that sees it no longer trusts ``since``
        shortcut[0] = 0
