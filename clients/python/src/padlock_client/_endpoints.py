"""Failover across deployment groups (DESIGN.md section 7) over urllib3 keep-alive pools.

A connection error, timeout, 429, 5xx or malformed 2xx from one group sends the request to
the next; a 4xx with Padlock's error body is a refusal, the same from any group. Padlock
fails fast, so there are no retries: the caller decides.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ._watchdog import Watchdog, pool_classes
from .errors import FailedAttempt, Unavailable
from .options import PadlockClientOptions

T = TypeVar("T")

#: Answers larger than this are refused; a batch of 10000 users is far below it.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: 4xx codes that say "wrong endpoint" (a proxy, a mistyped path prefix): fail over.
_ENDPOINT_CODES = frozenset(("ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"))


@dataclass(frozen=True)
class Refusal:
    """A final refusal from Padlock (a 4xx with its error body)."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T | None
    refusal: Refusal | None


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _error_body(body: bytes) -> tuple[str, str] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        return error["code"], error["message"]
    return None


def _reason(error: BaseException) -> str:
    # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first.
    if isinstance(error, NewConnectionError):
        return "CONNECTION_REFUSED" if "refused" in str(error).lower() else "CONNECT_ERROR"
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        return "TIMEOUT"
    if isinstance(error, SSLError):
        return "TLS_ERROR"
    if isinstance(error, ProtocolError):
        return "CONNECTION_ERROR"
    return type(error).__name__.upper()


class Endpoints:
    """Sends a request to the groups in order of preference until one answers it."""

    def __init__(self, options: PadlockClientOptions) -> None:
        self._options = options
        self._headers = {"accept": "application/json"}
        if options.credential is not None:
            self._headers["authorization"] = f"Bearer {options.credential}"
        tls = options.tls
        context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file is not None:
                context.load_cert_chain(tls.cert_file, tls.key_file)
        self._pool = urllib3.PoolManager(
            num_pools=64,
            maxsize=options.max_connections,
            block=False,
            retries=False,
            ssl_context=context,
        )
        self._watchdog = Watchdog()
        self._pool.pool_classes_by_scheme = pool_classes(self._watchdog)
        self._lock = threading.Lock()
        self._down_until: dict[str, float] = {}
        self._cursor: dict[str, int] = {}
        self._closed = False
        self.requests = 0
        self.failovers = 0
        self.retries = 0
        self._budget = 0.0 if options.retry is None else float(options.retry.budget_max)
        self._random = random.random

    def _plan(self) -> list[tuple[str, str]]:
        """(group, url) per group, groups with a healthy URL first."""
        now = time.monotonic()
        healthy: list[tuple[str, str]] = []
        down: list[tuple[str, str]] = []
        with self._lock:
            for group in self._options.groups:
                start = self._cursor.get(group.name, 0)
                self._cursor[group.name] = (start + 1) % len(group.urls)
                pick = None
                for i in range(len(group.urls)):
                    url = group.urls[(start + i) % len(group.urls)]
                    if self._down_until.get(url, 0.0) <= now:
                        pick = url
                        break
                if pick is not None:
                    healthy.append((group.name, pick))
                else:
                    down.append((group.name, group.urls[start % len(group.urls)]))
        return healthy + down

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        parse: Callable[[object], T],
    ) -> Outcome[T]:
        """Sends until a group answers: ``parse`` turns a 2xx JSON body into the result (a body it
        rejects counts as that group failing); a 4xx with Padlock's error body is a refusal."""
        if self._closed:
            raise Unavailable("the client is closed")
        retry = self._options.retry
        deadline = time.monotonic() + self._options.deadline_ms / 1000
        failures: list[FailedAttempt] = []
        if retry is not None:
            with self._lock:
                self._budget = min(retry.budget_max, self._budget + retry.budget_ratio)
        for round_ in range(1 + (0 if retry is None else retry.max_retries)):
            if round_ > 0:
                assert retry is not None
                # Full jitter (a random wait up to the capped exponential), paid from the budget, so that
                # retries cannot multiply the load on a group that is down.
                delay = self._random() * min(retry.max_delay_ms, retry.base_delay_ms * 2 ** (round_ - 1)) / 1000
                with self._lock:
                    if self._budget < 1 or time.monotonic() + delay >= deadline:
                        break
                    self._budget -= 1
                    self.retries += 1
                time.sleep(delay)
            outcome = self._round(method, path, body, parse, deadline, failures)
            if outcome is not None:
                return outcome
            if self._closed:
                break
        raise Unavailable(
            "the client is closed" if self._closed else "no Padlock endpoint group answered",
            tuple(failures[-16:]),
        )

    def _round(
        self,
        method: str,
        path: str,
        body: bytes | None,
        parse: Callable[[object], T],
        deadline: float,
        failures: list[FailedAttempt],
    ) -> Outcome[T] | None:
        """One pass over the groups, in order of preference; None when every one failed."""
        for i, (group, url) in enumerate(self._plan()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failures.append(FailedAttempt("-", "-", "DEADLINE"))
                return None
            with self._lock:
                self.failovers += i > 0
                self.requests += 1
            try:
                return self._attempt(url, method, path, body, parse, min(self._options.timeout_ms / 1000, remaining))
            except _Failed as failed:
                failures.append(FailedAttempt(group, url, failed.reason))
                with self._lock:
                    self._down_until[url] = time.monotonic() + self._options.down_ms / 1000
            if self._closed:
                return None
        return None

    def _attempt(
        self,
        url: str,
        method: str,
        path: str,
        body: bytes | None,
        parse: Callable[[object], T],
        timeout: float,
    ) -> Outcome[T]:
        headers = dict(self._headers)
        if body is not None:
            headers["content-type"] = "application/json"
        attempt = self._watchdog.begin(time.monotonic() + timeout)
        try:
            response = self._pool.request(
                method,
                url + path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                redirect=False,
                preload_content=False,
            )
            try:
                data = response.read(MAX_RESPONSE_BYTES + 1)
            finally:
                response.release_conn()
        except HTTPError as error:
            raise _Failed(attempt.why or _reason(error)) from None
        except OSError as error:
            raise _Failed(attempt.why or type(error).__name__.upper()) from None
        finally:
            self._watchdog.end(attempt)
        if attempt.why is not None:
            # Shut down while reading: what was read may be cut short, so it is not an answer.
            raise _Failed(attempt.why)
        if len(data) > MAX_RESPONSE_BYTES:
            raise _Failed("RESPONSE_TOO_LARGE")
        status = response.status
        if 200 <= status < 300:
            try:
                return Outcome(parse(json.loads(data)), None)
            except Exception:
                raise _Failed(f"HTTP_{status} BAD_RESPONSE") from None
        refused = _error_body(data)
        if 400 <= status < 500 and status != 429 and refused is not None and refused[0] not in _ENDPOINT_CODES:
            return Outcome(None, Refusal(status, refused[0], refused[1]))
        raise _Failed(f"HTTP_{status}" + ("" if refused is None else f" {refused[0]}"))

    def close(self) -> None:
        """Stops sending; attempts in flight are cut off and their calls fail with Unavailable."""
        self._closed = True
        self._watchdog.close()
        self._pool.clear()
