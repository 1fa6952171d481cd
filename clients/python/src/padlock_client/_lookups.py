"""Key lookups, coalesced and cached, for many threads.

A lookup is answered from the cache, or waits on the request already queued or in flight for
that user, or joins the queue. At most ``batch.max_in_flight`` batch-gets run at once; lookups
made meanwhile queue up and leave together in the next one (group commit), so many threads
asking for many users cost few requests.

Cache expiry is counted from when the request was sent, not answered: the server's
maxAgeSeconds is measured from its own read, which comes later, so an entry never outlives
the deletion bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ._user_keys import UserKeys
from .options import BatchOptions, CacheOptions

FetchBatch = Callable[[list[str]], list[UserKeys]]


class KeyCache:
    """LRU of users' keys, bounded by entries, each entry with its own expiry. Not thread-safe alone."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, tuple[UserKeys, float]] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: str, now: float) -> UserKeys | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[user_id]
            return None
        self._entries.move_to_end(user_id)
        return entry[0]

    def set(self, keys: UserKeys, expires_at: float) -> None:
        self._entries.pop(keys.user_id, None)
        self._entries[keys.user_id] = (keys, expires_at)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def delete(self, user_id: str) -> None:
        self._entries.pop(user_id, None)

    def clear(self) -> None:
        for keys, _ in self._entries.values():
            keys.wipe()
        self._entries.clear()


class _Pending:
    __slots__ = ("done", "keys", "error")

    def __init__(self) -> None:
        self.done = False
        self.keys: UserKeys | None = None
        self.error: BaseException | None = None


class KeyLookups:
    def __init__(
        self,
        fetch: FetchBatch,
        batch: BatchOptions,
        cache: CacheOptions | None,
        base_body_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_users = batch.max_users
        self._max_body_bytes = batch.max_body_bytes
        self._max_in_flight = batch.max_in_flight
        self._base_body_bytes = base_body_bytes
        self._cache = None if cache is None else KeyCache(cache.max_entries)
        self._max_ttl = 0.0 if cache is None else cache.max_ttl_ms / 1000
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight: dict[str, _Pending] = {}
        self._queue: list[tuple[str, _Pending]] = []
        self._senders = 0
        self.lookups = 0
        self.cache_hits = 0
        self.coalesced = 0
        self.batches = 0

    @property
    def cache_entries(self) -> int:
        return 0 if self._cache is None else len(self._cache)

    def get(self, user_id: str) -> UserKeys:
        """The user's keys, from the cache or one batch-get shared with every other waiting lookup."""
        with self._cond:
            self.lookups += 1
            cached = None if self._cache is None else self._cache.get(user_id, self._clock())
            if cached is not None:
                self.cache_hits += 1
                return cached
            pending = self._in_flight.get(user_id)
            if pending is not None:
                self.coalesced += 1
            else:
                pending = _Pending()
                self._in_flight[user_id] = pending
                self._queue.append((user_id, pending))
            while not pending.done:
                if self._queue and self._senders < self._max_in_flight:
                    batch = self._take()
                    self._senders += 1
                    self._cond.release()
                    try:
                        self._send(batch)
                    finally:
                        self._cond.acquire()
                        self._senders -= 1
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.keys is not None
        return pending.keys

    def get_many(self, user_ids: list[str]) -> dict[str, UserKeys | BaseException]:
        """Keys of many users: cached ones, then one batch-get per chunk of the rest (not queued
        behind other threads' lookups, so a pipeline's chunks are exactly its own)."""
        found: dict[str, UserKeys | BaseException] = {}
        missing: list[str] = []
        with self._cond:
            now = self._clock()
            for user_id in dict.fromkeys(user_ids):
                self.lookups += 1
                cached = None if self._cache is None else self._cache.get(user_id, now)
                if cached is not None:
                    self.cache_hits += 1
                    found[user_id] = cached
                else:
                    missing.append(user_id)
        for chunk in self._chunks(missing):
            sent_at = self._clock()
            with self._cond:
                self.batches += 1
            try:
                results = self._fetch(chunk)
            except Exception as error:
                for user_id in chunk:
                    found[user_id] = error
                continue
            with self._cond:
                for keys in results:
                    self._store(keys, sent_at)
                    found[keys.user_id] = keys
        return found

    def _chunks(self, user_ids: list[str]) -> list[list[str]]:
        chunks: list[list[str]] = []
        current: list[str] = []
        size = self._base_body_bytes
        for user_id in user_ids:
            # User ids are ASCII without quotes or backslashes: each adds its length, two quotes and a comma.
            cost = len(user_id) + 3
            if current and (len(current) >= self._max_users or size + cost > self._max_body_bytes):
                chunks.append(current)
                current, size = [], self._base_body_bytes
            current.append(user_id)
            size += cost
        if current:
            chunks.append(current)
        return chunks

    def _take(self) -> list[tuple[str, _Pending]]:
        """The head of the queue, within the batch limits. Called with the lock held."""
        take = len(self._chunks([u for u, _ in self._queue])[0])
        batch, self._queue = self._queue[:take], self._queue[take:]
        return batch

    def _send(self, batch: list[tuple[str, _Pending]]) -> None:
        sent_at = self._clock()
        user_ids = [u for u, _ in batch]
        try:
            results = self._fetch(user_ids)
            error: BaseException | None = None
        except BaseException as failure:
            results, error = [], failure
        with self._cond:
            self.batches += 1
            for i, (user_id, pending) in enumerate(batch):
                # Not current when invalidate() ran meanwhile: the waiters get their answer, the cache nothing.
                current = self._in_flight.get(user_id) is pending
                if current:
                    del self._in_flight[user_id]
                if error is None:
                    pending.keys = results[i]
                    if current:
                        self._store(results[i], sent_at)
                else:
                    pending.error = error
                pending.done = True

    def _store(self, keys: UserKeys, sent_at: float) -> None:
        if self._cache is None or keys.status != "ok":
            return
        ttl = min(keys.max_age_seconds, self._max_ttl)
        if ttl > 0:
            self._cache.set(keys, sent_at + ttl)

    def prime(self, keys: UserKeys, sent_at: float) -> None:
        """Caches keys obtained otherwise (a create's answer)."""
        with self._cond:
            if keys.user_id not in self._in_flight:
                self._store(keys, sent_at)

    def invalidate(self, user_id: str) -> None:
        """Forgets the user's keys; a request in flight still answers its waiters but is not cached."""
        with self._cond:
            if self._cache is not None:
                self._cache.delete(user_id)
            self._in_flight.pop(user_id, None)

    def lower_limits(self, max_users: int | None = None, max_body_bytes: int | None = None) -> None:
        """After a server refused a batch as too large: later batches fit at the first attempt."""
        with self._cond:
            if max_users is not None:
                self._max_users = max(1, min(self._max_users, max_users))
            if max_body_bytes is not None:
                self._max_body_bytes = max(self._base_body_bytes + 131, min(self._max_body_bytes, max_body_bytes))

    def close(self) -> None:
        with self._cond:
            if self._cache is not None:
                self._cache.clear()
