"""Read-optimised copies of published versions (decision 50).

In the lake a version's rows lie in the Parquet files of every publish since the table
began, with deletion files between them: a page of them in key order sorts the whole version
(240 ms at 1M rows, 1.3 s for a page at offset 900k). A copy is one DuckDB file per version
and order: the version's items sorted, each row with ``_ord``, its position in that order.
A page then reads a range of ``_ord``, which DuckDB's zone maps narrow to the blocks holding
it: the cost follows the page, not the table.

A version never changes, so a copy is never stale; its file name holds the version's run id
(new for every publish), so a lake rebuilt in the same folder never meets an old copy. Copies
are built in the background, one at a time, and once across processes (a lock file per
copy): a page asked for before its copy is ready reads the lake, in the same order, with the
same rows. Copies least recently used go when the folder outgrows its budget; one in use by
a query is never removed under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from catalog.sql import quote_ident
from catalog.store.versions import Version

COPY_TABLE = "rows"
ORDINAL = "_ord"
_SUFFIX = ".duckdb"
_log = logging.getLogger(__name__)
_MEMO_SIZE = 256  # values remembered per process (page windows, asks, failures)
_IDENTITY = "copy_of"
ASKS_BEFORE_BUILD = 2
"""Pages asked in an order (of one version) before its copy is built."""
QUEUE_MAX = 8
"""Builds waiting at most; further ones are asked for again by later pages."""
RETRY_SECONDS = 60
"""Wait before building a copy again (its build failed, or it was removed since)."""


@dataclass(frozen=True)
class CopySpec:
    """One copy: the version, the items it holds, and the order of its rows as SQL (a total
    order: it ends with the key or a keyed pseudonym of it)."""

    version: Version
    items: tuple[str, ...]
    order: str
    relation: str
    """The version's rows with these items (:func:`dataset_relation`)."""

    @property
    def name(self) -> str:
        """File name: the version, and a digest of its order (the SQL may hold a pseudonym
        key, so it is never written out as such)."""
        digest = hashlib.sha256(f"{self.items}\0{self.order}".encode()).hexdigest()[:20]
        v = self.version
        return f"{v.dataset}.v{v.version}.{v.run_id}.{digest}{_SUFFIX}"


class ReadCopies:
    """The copies of one runtime folder, attached read-only to one DuckDB instance.

    ``connect`` gives a cursor of the instance the API reads with: copies are attached there
    (an ATTACH is seen by every cursor of the instance). ``budget_bytes`` 0 turns copies off.

    A copy is built when its order is asked for a second time (:data:`ASKS_BEFORE_BUILD`),
    or at once for a new version's key order (:meth:`prepare`): a caller cycling through
    sorts cannot make the platform sort whole versions on every page, and a budget smaller
    than the orders in use does not rebuild a copy on every page. At most
    :data:`QUEUE_MAX` builds wait; a copy is built at most once per :data:`RETRY_SECONDS`
    (a failed build is not retried at once, an evicted copy not rebuilt at once). A copy
    whose file is damaged, replaced or removed is dropped (the page reads the lake) and
    built again.
    """

    def __init__(
        self,
        folder: Path,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        budget_bytes: int,
    ) -> None:
        self._folder = folder
        self._connect = connect
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._attached: OrderedDict[str, str] = OrderedDict()  # file name -> alias, LRU first
        self._in_use: dict[str, int] = {}
        self._wanted: set[str] = set()
        self._asked: OrderedDict[str, int] = OrderedDict()
        # File name -> when its last build ended (failed or not): a copy is built at most
        # once per RETRY_SECONDS, so a budget smaller than the orders in use cannot turn
        # every page into a build.
        self._built: OrderedDict[str, float] = OrderedDict()
        self._queue: queue.Queue[CopySpec | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._memo: OrderedDict[tuple, object] = OrderedDict()
        self.failures: deque[str] = deque(maxlen=20)
        """The latest copies that failed (not built, refused, dropped), and why."""
        self.pages_served = 0
        """Pages read from a copy rather than the lake (tests, benchmarks)."""

    @property
    def enabled(self) -> bool:
        return self._budget > 0

    @contextlib.contextmanager
    def use(self, spec: CopySpec) -> Iterator[str | None]:
        """The alias of the copy's catalog while the block runs (not removed meanwhile), or
        None when it is not built yet (the caller reads the lake; the build may be queued).
        A page that finds the copy damaged calls :meth:`discard`."""
        alias = self._acquire(spec) if self.enabled else None
        try:
            yield alias
        finally:
            if alias is not None:
                with self._lock:
                    self._in_use[spec.name] -= 1

    def prepare(self, spec: CopySpec) -> None:
        """Queue the copy's build unless it is attached or queued (a new version's copy in key
        order, before anyone asks for a page of it)."""
        if self.enabled:
            with self._lock:
                if spec.name not in self._attached:
                    self._want(spec)

    def discard(self, spec: CopySpec, error: Exception) -> None:
        """Drop a copy a page could not read (damaged or cut short): detached once no query
        reads it, its file removed, built again when next asked for."""
        _log.warning("read copy %s dropped: %s", spec.name, error)
        self.failures.append(f"{spec.name}: {type(error).__name__}: {error}")
        with self._lock:
            self._built.pop(spec.name, None)  # built again when next asked for
        self._drop(spec.name, remove=True)

    @property
    def pending(self) -> int:
        """Copies queued or being built."""
        return len(self._wanted)

    def memo(self, key: tuple, compute: Callable[[], object]) -> object:
        """A value derived from a copy (it never changes), computed once per process."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = compute()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return value

    def wait(self, timeout: float = 60) -> None:
        """Until every queued build is done (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._wanted and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Stop after the build under way: the queued ones are left (a later start builds
        them when asked)."""
        if self._worker is not None:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            self._queue.put(None)
            self._worker.join()
            self._worker = None
            self._wanted.clear()

    def _acquire(self, spec: CopySpec) -> str | None:
        name = spec.name
        with self._lock:
            alias = self._attached.get(name)
            if alias is not None and (self._folder / name).exists():
                self._attached.move_to_end(name)
                self._in_use[name] = self._in_use.get(name, 0) + 1
                self.pages_served += 1
                return alias
            asked = self._asked.pop(name, 0) + 1
            self._asked[name] = asked
            while len(self._asked) > _MEMO_SIZE:
                self._asked.popitem(last=False)
            if asked >= ASKS_BEFORE_BUILD and alias is None:
                self._want(spec)
        if alias is not None:  # removed by another process (its budget): drop it here too
            self._drop(name, remove=False)
        return None

    def _want(self, spec: CopySpec) -> None:  # under the lock
        built = self._built.get(spec.name)
        if built is not None and time.monotonic() - built < RETRY_SECONDS:
            return
        if spec.name not in self._wanted and len(self._wanted) < QUEUE_MAX:
            self._wanted.add(spec.name)
            self._queue.put(spec)
            self._start_worker()

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="read-copies", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while (spec := self._queue.get()) is not None:
            try:
                self._provide(spec)
            except Exception as error:  # the pages of this copy go on reading the lake
                self.failures.append(f"{spec.name}: {type(error).__name__}: {error}")
                _log.warning("read copy %s not built: %s", spec.name, error)
            finally:
                with self._lock:
                    self._wanted.discard(spec.name)
                    self._built[spec.name] = time.monotonic()
                    while len(self._built) > _MEMO_SIZE:
                        self._built.popitem(last=False)

    def _provide(self, spec: CopySpec) -> None:
        """Attach the copy, building it first unless another process has (or is doing so:
        then it is asked for again by a later page). A file found but refused (damaged, or
        not this copy) is removed and the copy built at once."""
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / spec.name
        for last_try in (False, True):
            if not path.exists():
                lock_path = path.with_name(path.name + ".lock")
                with open(lock_path, "a+") as lock:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        return
                    if not path.exists():
                        self._build(spec, path)
                    lock_path.unlink(missing_ok=True)
            try:
                self._attach(spec.name, path)
                break
            except duckdb.Error as error:
                path.unlink(missing_ok=True)
                if last_try:
                    raise
                self.failures.append(f"{spec.name}: refused, built again: {error}")
                _log.warning("read copy %s refused, built again: %s", spec.name, error)
        self._evict(keep=spec.name)

    def _build(self, spec: CopySpec, path: Path) -> None:
        partial = path.with_name(path.name + ".partial")
        for stale in (partial, partial.with_name(partial.name + ".wal")):
            stale.unlink(missing_ok=True)
        alias = "building_copy"
        items = ", ".join(quote_ident(item) for item in spec.items)
        con = self._connect()
        try:
            con.execute(f"ATTACH {_path_literal(partial)} AS {alias}")
            con.execute(
                f"CREATE TABLE {alias}.{COPY_TABLE} AS SELECT {items}, "
                f"row_number() OVER (ORDER BY {spec.order}) - 1 AS {ORDINAL} "
                f"FROM {spec.relation} ORDER BY {ORDINAL}"
            )
            # What the copy is, inside it: a file renamed or swapped is refused on attach.
            con.execute(f"CREATE TABLE {alias}.{_IDENTITY} AS SELECT ? AS name", [spec.name])
            con.execute(f"DETACH {alias}")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DETACH DATABASE IF EXISTS {alias}")
            partial.unlink(missing_ok=True)
            raise
        finally:
            con.close()
        os.replace(partial, path)

    def _attach(self, name: str, path: Path) -> None:
        alias = _alias(name)
        con = self._connect()
        try:
            con.execute(f"ATTACH IF NOT EXISTS {_path_literal(path)} AS {alias} (READ_ONLY)")
            try:
                found = con.execute(f"SELECT name FROM {alias}.{_IDENTITY}").fetchone()
            except duckdb.Error:
                found = None
            if found is None or found[0] != name:
                con.execute(f"DETACH DATABASE IF EXISTS {alias}")
                raise duckdb.InvalidInputException(f"{path.name} is not the copy its name says")
        finally:
            con.close()
        os.utime(path)  # the folder's least recently used copies go first, across processes
        with self._lock:
            self._attached[name] = alias

    def _drop(self, name: str, *, remove: bool) -> None:
        """Forget a copy: detached now if no query reads it (else by the next eviction or
        acquire that finds it unused), its file removed when ``remove``."""
        with self._lock:
            busy = self._in_use.get(name, 0) > 0
            alias = None if busy else self._attached.pop(name, None)
            for key in [k for k in self._memo if k[0] == _alias(name)]:
                del self._memo[key]
        if alias is not None:
            con = self._connect()
            try:
                con.execute(f"DETACH DATABASE IF EXISTS {alias}")
            finally:
                con.close()
        if remove:
            (self._folder / name).unlink(missing_ok=True)

    def _evict(self, keep: str) -> None:
        """Remove the least recently used copies while the folder is over its budget; never
        ``keep`` (just attached) nor one a query of this process is reading. Copies another
        process removed are detached here too (their space is only freed then)."""
        files = []
        for path in self._folder.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # another process removed it
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        with self._lock:
            gone = [n for n in self._attached if not (self._folder / n).exists()]
        for name in gone:
            self._drop(name, remove=False)
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self._budget:
                break
            with self._lock:
                if path.name == keep or self._in_use.get(path.name, 0):
                    continue
            self._drop(path.name, remove=True)
            total -= size


def _alias(name: str) -> str:
    """The catalog name a copy is attached under in this process."""
    return "copy_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _path_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
