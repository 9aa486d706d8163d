"""Posting lists: the patients filed under one key or a run of keys, and their intersection.

A posting is a slice of the memory-mapped index (uint32 patient indices), never copied into Python objects until a
search asks for its members. Every posting a search uses holds at least the patients that can match, so
intersecting them (or skipping an intersection that would cost more than it saves) never loses a match.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

# A posting that can only be tested by building a set is used as a filter when it is at most this many times the
# size of the candidates it filters: a set costs ~0.05 us an entry, a person judged needlessly ~40 us.
SET_FILTER_RATIO = 200


class Posting(Protocol):
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...
    def __contains__(self, index: object) -> bool: ...
    @property
    def cheap_membership(self) -> bool: ...


class SortedPosting:
    """One key's patients, in ascending order: membership is a binary search."""

    cheap_membership = True

    def __init__(self, view: Sequence[int]):
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def __iter__(self) -> Iterator[int]:
        return iter(self.view)

    def __contains__(self, index: object) -> bool:
        at = bisect.bisect_left(self.view, index)  # type: ignore[call-overload]
        return at < len(self.view) and self.view[at] == index


EMPTY = SortedPosting(())


class RangePosting:
    """The patients of a run of neighbouring keys (a date range, a name prefix), one key's after another's. `test`,
    when given, tells membership from the patient alone (e.g. their date of birth); otherwise a set is built."""

    def __init__(self, view: Sequence[int], test: Callable[[int], bool] | None = None):
        self.view = view
        self.test = test
        self._members: set[int] | None = None

    @property
    def cheap_membership(self) -> bool:
        return self.test is not None

    def __len__(self) -> int:
        return len(self.view)

    def __iter__(self) -> Iterator[int]:
        return iter(dict.fromkeys(self.view))  # a patient filed under two of the keys is listed once

    def __contains__(self, index: object) -> bool:
        if self.test is not None:
            return self.test(index)  # type: ignore[arg-type]
        if self._members is None:
            self._members = set(self.view)
        return index in self._members


class UnionPosting:
    """Patients under any of several keys (fuzzy search: a name's Soundex key as family or given name)."""

    def __init__(self, parts: Iterable[SortedPosting]):
        self.parts = [p for p in parts if len(p)]

    cheap_membership = True

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)  # an upper bound: enough to choose the narrowest posting

    def __iter__(self) -> Iterator[int]:
        return iter(sorted({i for p in self.parts for i in p}))

    def __contains__(self, index: object) -> bool:
        return any(index in p for p in self.parts)


def intersection(postings: Sequence[Posting]) -> list[int]:
    """Patients in every posting, from the narrowest one; a posting too large to test cheaply is left out (the
    result is then a superset, which judging each candidate in full makes exact)."""
    ordered = sorted(postings, key=len)
    narrowest, others = ordered[0], ordered[1:]
    filters = [p for p in others if p.cheap_membership or len(p) <= SET_FILTER_RATIO * max(1, len(narrowest))]
    return [i for i in narrowest if all(i in p for p in filters)]
