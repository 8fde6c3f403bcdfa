"""What a process read from the access tables, kept while the access generation stands.

Every authenticated call needs the caller's token, user and department, and every read
their department's grants on the dataset: four queries through the ORM cost more than the
page they guard. The values are kept per process and dropped the moment the access
generation (``catalog.state.models.StateGeneration``) changes, which the database's triggers
do in the same transaction as any change to those tables, by any process: a revocation or a
disabled user is seen on the very next call, as before. Each call still reads the generation
(one primary-key lookup). Anything that depends on the clock (expiry, a grant's start) is
checked by the caller on every call, against the values kept here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlalchemy.orm import Session

from catalog.state.db import StateStore

T = TypeVar("T")
MAX_ENTRIES = 10_000  # tokens and (department, dataset) pairs; beyond it, start over


class AccessMemo:
    def __init__(self, store: StateStore, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.max_entries = max_entries
        self._generation: int | None = None
        self._values: dict[Hashable, object] = {}
        self._lock = threading.Lock()

    def generation(self) -> int:
        """The access generation now: read it at the start of a call and pass it to every
        :meth:`get` of the call."""
        return self.store.generation()

    def get(
        self, key: Hashable, compute: Callable[[Session], T | None], generation: int | None = None
    ) -> T | None:
        """The value under ``key`` as of ``generation`` (read now if not given), computed in
        a read transaction if not kept for it. The generation is read before the value, so
        a value kept under it is at least as new as it; None (an unknown token) is not kept."""
        if generation is None:
            generation = self.store.generation()
        with self._lock:
            if generation != self._generation:
                self._values.clear()
                self._generation = generation
            if key in self._values:
                return self._values[key]  # type: ignore[return-value]
        with self.store.reading() as session:
            value = compute(session)
        with self._lock:
            if value is not None and self._generation == generation:
                if len(self._values) >= self.max_entries:
                    self._values.clear()
                self._values[key] = value
        return value
