"""The Padlock client: encrypts and decrypts a user's data with that user's derived keys, which
it fetches, batches, caches (within the server's deletion bound) and never hands out."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote

from ._endpoints import Endpoints, Refusal
from ._lookups import KeyLookups
from ._user_keys import BadResponse, KeyStatus, UserKeys, parse_batch, parse_user_keys
from .envelope import EnvelopeHeader, ParsedEnvelope, open_parsed, parse_envelope, seal_envelope
from .errors import (
    DecryptionFailed,
    InvalidInput,
    KeychainNotFound,
    KeychainPendingDeletion,
    KeychainShredded,
    LegalHold,
    PadlockClientError,
    PermissionDenied,
    Unavailable,
)
from .ids import CATEGORY_MESSAGE, USER_ID_MESSAGE, is_category, is_user_id
from .options import PadlockClientOptions
from .receipts import ReceiptClaims, kid_of, verify_receipt
from .secret import SecretKey

T = TypeVar("T")
_SCHEDULE_ID = re.compile(r"sched-[0-9a-f-]{36}")
_HOLD_ID = re.compile(r"hold-[0-9a-f-]{36}")


@dataclass(frozen=True)
class ShredOutcome:
    """How many key versions a shred destroyed, and its signed receipt (keep the JWS as the proof)."""

    shredded: int
    receipt_id: str
    receipt_jws: str


@dataclass(frozen=True)
class ScheduledShred:
    """A scheduled shred as Padlock shows it (times ISO 8601); category None is the whole keychain."""

    schedule_id: str
    user_id: str
    category: str | None
    state: Literal["pending", "executing", "executed", "cancelled"]
    execute_at: str
    serve_during_grace: bool
    requested_by: str
    created_at: str
    finished_at: str | None
    finished_by: str | None
    #: False when the stored row failed its integrity check (shown, never acted on).
    verified: bool


@dataclass(frozen=True)
class LegalHoldRecord:
    hold_id: str
    user_id: str
    category: str | None
    reason: str
    placed_by: str
    placed_at: str
    released_at: str | None
    released_by: str | None
    state: Literal["in_force", "released"]
    verified: bool


@dataclass(frozen=True)
class LifecycleStatus:
    user_id: str
    schedules: tuple[ScheduledShred, ...]
    holds: tuple[LegalHoldRecord, ...]


@dataclass(frozen=True)
class CategoryKeysView:
    """One category of a user's keys, as get_keys returns it."""

    category: str
    status: KeyStatus
    #: The version new data is encrypted with; None when the category has no live key.
    current: int | None
    #: Copies the caller owns (and may wipe), by version, oldest first.
    keys: dict[int, SecretKey]


@dataclass(frozen=True)
class BulkResult:
    """One record of decrypt_many: the plaintext, or the error that record alone met."""

    plaintext: bytes | None
    error: PadlockClientError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _record(json_value: object, cls: type[T], id_field: str, pattern: re.Pattern[str]) -> T:
    if not isinstance(json_value, dict):
        raise BadResponse(f"{id_field} record is not an object")
    ident = json_value.get(id_field)
    if not isinstance(ident, str) or pattern.fullmatch(ident) is None:
        raise BadResponse(f"{id_field} is missing")
    # Fields a later server adds are ignored (forward compatible); a missing one is a malformed answer.
    known = {f.name for f in fields(cast(Any, cls))}
    given = {_snake(k): v for k, v in cast(dict[str, object], json_value).items()}
    if not known <= given.keys():
        raise BadResponse(f"{id_field} record lacks {sorted(known - given.keys())}")
    return cls(**{name: given[name] for name in known})


def _refusal_error(refusal: Refusal) -> PadlockClientError:
    code = refusal.code
    if code == "KEYCHAIN_NOT_FOUND":
        return KeychainNotFound()
    if code == "KEYCHAIN_SHREDDED":
        return KeychainShredded()
    if code == "KEYCHAIN_PENDING_DELETION":
        return KeychainPendingDeletion()
    if code == "LEGAL_HOLD":
        return LegalHold(f"Padlock refused: {refusal.message}")
    if code == "UNAUTHENTICATED":
        return PermissionDenied("Padlock refused the credential", code)
    if code == "PERMISSION_DENIED":
        return PermissionDenied(f"Padlock refused: {refusal.message}", code)
    return InvalidInput(f"Padlock refused the request ({code}): {refusal.message}")


def _check_user_id(user_id: object) -> str:
    if not is_user_id(user_id):
        raise InvalidInput(USER_ID_MESSAGE)
    return cast(str, user_id)


def _to_bytes(plaintext: object) -> bytes:
    if isinstance(plaintext, str):
        return plaintext.encode("utf-8")
    if isinstance(plaintext, (bytes, bytearray, memoryview)):
        return bytes(plaintext)
    raise InvalidInput("plaintext must be str or bytes")


class PadlockClient:
    """Thread-safe; one per process, shared by every thread.

    Example::

        padlock = PadlockClient(PadlockClientOptions(
            groups=(EndpointGroup("padlock", ("http://padlock-1:8700",)),
                    EndpointGroup("padlock-mirror", ("http://padlock-mirror:8700",))),
            credential=os.environ["PADLOCK_CREDENTIAL"],
        ))
        sealed = padlock.encrypt("alice", "profile", '{"email": "a@example.com"}')
        text = padlock.decrypt_text("alice", sealed)
    """

    def __init__(self, options: PadlockClientOptions) -> None:
        if not isinstance(options, PadlockClientOptions):
            raise InvalidInput("options must be a PadlockClientOptions")
        self._options = options
        self._endpoints = Endpoints(options)
        base = (
            {"userIds": []} if options.categories is None else {"userIds": [], "categories": list(options.categories)}
        )
        self._lookups = KeyLookups(
            self._fetch_batch, options.batch, options.cache, len(json.dumps(base, separators=(",", ":")))
        )
        self._jwks: object = None
        self._jwks_lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> PadlockClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PadlockClient(groups={[g.name for g in self._options.groups]})"

    # --- data -----------------------------------------------------------------------------

    def encrypt(self, user_id: str, category: str, plaintext: str | bytes) -> bytes:
        """Encrypts ``plaintext`` (str as UTF-8, or bytes) under the category's current key.

        Raises KeychainNotFound, KeychainShredded (do not store the data), PermissionDenied,
        Unavailable, InvalidInput.
        """
        _check_user_id(user_id)
        self._check_category(category)
        data = _to_bytes(plaintext)
        keys = self._keys_of(user_id)
        entry = keys.categories.get(category)
        if entry is None:
            raise PermissionDenied(f'the service may not read category "{category}", or Padlock does not have it')
        if entry.status == "shredded":
            raise KeychainShredded(category)
        key = entry.versions.get(entry.current)
        if entry.status == "not_found" or key is None:
            raise KeychainNotFound(category)
        return seal_envelope(key, user_id, EnvelopeHeader(category, entry.current), data)

    def decrypt(self, user_id: str, envelope: bytes) -> bytes:
        """Decrypts an envelope made for this user, under whichever key version it names.

        Raises DecryptionFailed (tampered, truncated, another user's or service's, unknown
        version: one error for all), KeychainShredded (treat the data as deleted),
        KeychainNotFound, PermissionDenied, Unavailable, InvalidInput.
        """
        _check_user_id(user_id)
        if not isinstance(envelope, (bytes, bytearray, memoryview)):
            raise InvalidInput("envelope must be bytes")
        # A malformed envelope fails before any lookup: the header is public, so this tells nothing new.
        data = bytes(envelope)
        parsed = parse_envelope(data)
        if parsed is None:
            raise DecryptionFailed()
        return self._open(user_id, data, parsed, self._keys_of(user_id))

    def decrypt_text(self, user_id: str, envelope: bytes) -> str:
        """decrypt, then UTF-8 decoding (invalid sequences become U+FFFD, as in the TypeScript SDK:
        a UnicodeDecodeError would carry plaintext bytes in its message)."""
        return self.decrypt(user_id, envelope).decode("utf-8", errors="replace")

    def decrypt_many(self, records: Iterable[tuple[str, bytes]]) -> list[BulkResult]:
        """Decrypts many records of many users, for pipelines: one batch-get per chunk of users
        not cached (``batch.max_users`` per chunk). Each record gets its own result: a shredded
        user's records fail with KeychainShredded and the rest go on. Raises only for bad input.

        Example::

            for result in padlock.decrypt_many((row.user_id, row.blob) for row in rows):
                if result.ok: ...
        """
        listed: list[tuple[str, bytes]] = []
        for user_id, envelope in records:
            _check_user_id(user_id)
            if not isinstance(envelope, (bytes, bytearray, memoryview)):
                raise InvalidInput("each envelope must be bytes")
            listed.append((user_id, bytes(envelope)))
        self._check_open()
        parsed = [parse_envelope(e) for _, e in listed]
        wanted = [u for (u, _), p in zip(listed, parsed, strict=True) if p is not None]
        found = self._lookups.get_many(wanted)
        results: list[BulkResult] = []
        for (user_id, envelope), header in zip(listed, parsed, strict=True):
            try:
                if header is None:
                    raise DecryptionFailed()
                keys = found[user_id]
                if isinstance(keys, PadlockClientError):
                    raise keys
                if isinstance(keys, BaseException):
                    raise Unavailable(f"the batch-get failed: {type(keys).__name__}")
                results.append(BulkResult(self._open(user_id, envelope, header, self._usable(keys)), None))
            except PadlockClientError as error:
                results.append(BulkResult(None, error))
        return results

    def get_keys(self, user_id: str) -> list[CategoryKeysView]:
        """The user's derived keys, for code that must encrypt itself (another format, a stream).
        Copies: wipe them when done. Prefer encrypt/decrypt."""
        _check_user_id(user_id)
        keys = self._keys_of(user_id)
        return [
            CategoryKeysView(
                category,
                entry.status,
                entry.current if entry.status == "ok" else None,
                {version: SecretKey(key.expose()) for version, key in sorted(entry.versions.items())},
            )
            for category, entry in keys.categories.items()
        ]

    # --- lifecycle ------------------------------------------------------------------------

    def create_keychain(self, user_id: str) -> bool:
        """Creates the user's keychain at signup (idempotent; needs the create right) and caches
        the keys it answers with. True when this call created it."""
        _check_user_id(user_id)
        sent_at = time.monotonic()
        body = json.dumps({"userId": user_id}).encode()

        def parse(value: object) -> tuple[bool, UserKeys]:
            created = value.get("created") if isinstance(value, dict) else None
            if not isinstance(created, bool):
                raise BadResponse("created is not a boolean")
            return created, parse_user_keys(value, user_id, self._options.categories)

        created, keys = self._call("POST", "/v1/keychains", body, parse)
        if not self._closed:
            self._lookups.prime(keys, sent_at)
        return created

    def shred_keychain(self, user_id: str) -> ShredOutcome:
        """Shreds every category of the user (account deletion; needs the shred right). This
        client forgets the keys at once; others within the server's maxStalenessSeconds."""
        _check_user_id(user_id)
        return self._shred(user_id, f"/v1/keychains/{quote(user_id, safe='')}")

    def shred_category(self, user_id: str, category: str) -> ShredOutcome:
        """Shreds one category of the user (an opt-out); the others stay readable."""
        _check_user_id(user_id)
        if not is_category(category):
            raise InvalidInput(CATEGORY_MESSAGE)
        return self._shred(user_id, f"/v1/keychains/{quote(user_id, safe='')}/categories/{category}")

    def rotate_category(self, user_id: str, category: str) -> int:
        """Adds a key version to the category (needs the rotate right); returns the new version."""
        _check_user_id(user_id)
        if not is_category(category):
            raise InvalidInput(CATEGORY_MESSAGE)

        def parse(value: object) -> int:
            version = value.get("version") if isinstance(value, dict) else None
            if type(version) is not int:
                raise BadResponse("version is not an integer")
            return version

        version = self._call(
            "POST", f"/v1/keychains/{quote(user_id, safe='')}/categories/{category}/rotate", None, parse
        )
        self._lookups.invalidate(user_id)
        return version

    def verify_receipt(self, jws: str) -> ReceiptClaims:
        """Verifies a deletion receipt with the keys Padlock publishes (GET /v1/receipts/keys,
        fetched once and again when a receipt names a kid not yet seen). Raises ReceiptInvalid."""
        if not isinstance(jws, str) or len(jws) > 65536:
            raise InvalidInput("jws must be a string of at most 64 KiB")
        kid = kid_of(jws.strip())
        with self._jwks_lock:
            jwks = self._jwks
        known = isinstance(jwks, dict) and any(
            isinstance(k, dict) and k.get("kid") == kid for k in cast(list[object], jwks.get("keys", []))
        )
        if not known:

            def parse(value: object) -> object:
                if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
                    raise BadResponse("the JWKS has no keys array")
                return value

            jwks = self._call("GET", "/v1/receipts/keys", None, parse)
            with self._jwks_lock:
                self._jwks = jwks
        return verify_receipt(jws, jwks)

    def schedule_shred(
        self,
        user_id: str,
        *,
        serve_during_grace: bool,
        category: str | None = None,
        grace_seconds: int | None = None,
        execute_at: datetime | None = None,
    ) -> ScheduledShred:
        """Schedules the shred of the keychain (or one category) after a grace period; give
        exactly one of grace_seconds and execute_at (timezone-aware)."""
        _check_user_id(user_id)
        if category is not None and not is_category(category):
            raise InvalidInput(CATEGORY_MESSAGE)
        if (grace_seconds is None) == (execute_at is None):
            raise InvalidInput("give exactly one of grace_seconds and execute_at")
        if not isinstance(serve_during_grace, bool):
            raise InvalidInput("serve_during_grace must be a bool")
        body: dict[str, object] = {"serveDuringGrace": serve_during_grace}
        if category is not None:
            body["category"] = category
        if grace_seconds is not None:
            if type(grace_seconds) is not int or grace_seconds < 0:
                raise InvalidInput("grace_seconds must be a whole number of seconds >= 0")
            body["graceSeconds"] = grace_seconds
        if execute_at is not None:
            if not isinstance(execute_at, datetime) or execute_at.tzinfo is None:
                raise InvalidInput("execute_at must be a timezone-aware datetime")
            body["executeAt"] = execute_at.isoformat()
        return self._call(
            "POST",
            f"/v1/keychains/{quote(user_id, safe='')}/schedules",
            json.dumps(body).encode(),
            lambda v: _record(v, ScheduledShred, "scheduleId", _SCHEDULE_ID),
        )

    def cancel_scheduled_shred(self, user_id: str, schedule_id: str) -> ScheduledShred:
        """Cancels a scheduled shred no node has started (refused with SCHEDULE_NOT_PENDING after)."""
        return self._schedule_call("DELETE", user_id, schedule_id)

    def get_scheduled_shred(self, user_id: str, schedule_id: str) -> ScheduledShred:
        return self._schedule_call("GET", user_id, schedule_id)

    def place_hold(self, user_id: str, reason: str, category: str | None = None) -> LegalHoldRecord:
        """Places a legal hold: no shred of the keychain (or category) runs until released."""
        _check_user_id(user_id)
        if category is not None and not is_category(category):
            raise InvalidInput(CATEGORY_MESSAGE)
        if not isinstance(reason, str) or not 1 <= len(reason) <= 1000:
            raise InvalidInput("reason must be 1-1000 characters")
        body: dict[str, object] = {"reason": reason}
        if category is not None:
            body["category"] = category
        return self._call(
            "POST",
            f"/v1/keychains/{quote(user_id, safe='')}/holds",
            json.dumps(body).encode(),
            lambda v: _record(v, LegalHoldRecord, "holdId", _HOLD_ID),
        )

    def release_hold(self, user_id: str, hold_id: str) -> LegalHoldRecord:
        _check_user_id(user_id)
        if not isinstance(hold_id, str) or _HOLD_ID.fullmatch(hold_id) is None:
            raise InvalidInput("hold_id must look like hold-<uuid>")
        return self._call(
            "DELETE",
            f"/v1/keychains/{quote(user_id, safe='')}/holds/{hold_id}",
            None,
            lambda v: _record(v, LegalHoldRecord, "holdId", _HOLD_ID),
        )

    def lifecycle_status(self, user_id: str) -> LifecycleStatus:
        """The user's scheduled shreds and legal holds, from the keychain's metadata."""
        _check_user_id(user_id)

        def parse(value: object) -> LifecycleStatus:
            if not isinstance(value, dict):
                raise BadResponse("not an object")
            schedules, holds = value.get("schedules"), value.get("holds")
            if not isinstance(schedules, list) or not isinstance(holds, list):
                raise BadResponse("schedules or holds is not an array")
            return LifecycleStatus(
                user_id,
                tuple(_record(s, ScheduledShred, "scheduleId", _SCHEDULE_ID) for s in schedules),
                tuple(_record(h, LegalHoldRecord, "holdId", _HOLD_ID) for h in holds),
            )

        return self._call("GET", f"/v1/keychains/{quote(user_id, safe='')}", None, parse)

    def forget(self, user_id: str) -> None:
        """Drops this client's cached keys of the user; the next operation asks Padlock again."""
        self._lookups.invalidate(user_id)

    def stats(self) -> dict[str, int]:
        """Counters since creation, and the cache's size."""
        lookups = self._lookups
        return {
            "lookups": lookups.lookups,
            "cache_hits": lookups.cache_hits,
            "coalesced": lookups.coalesced,
            "batches": lookups.batches,
            "requests": self._endpoints.requests,
            "failovers": self._endpoints.failovers,
            "retries": self._endpoints.retries,
            "cache_entries": lookups.cache_entries,
        }

    def close(self) -> None:
        """Wipes cached keys and closes connections; later calls raise Unavailable."""
        if not self._closed:
            self._closed = True
            self._endpoints.close()
            self._lookups.close()

    # --- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the client is closed")

    def _check_category(self, category: object) -> None:
        if not is_category(category):
            raise InvalidInput(CATEGORY_MESSAGE)
        only = self._options.categories
        if only is not None and category not in only:
            raise InvalidInput(f'category "{category}" is not among options.categories')

    def _keys_of(self, user_id: str) -> UserKeys:
        self._check_open()
        keys = self._lookups.get(user_id)
        # close() wipes cached keys: never use them after it, even if this lookup began before.
        self._check_open()
        return self._usable(keys)

    @staticmethod
    def _usable(keys: UserKeys) -> UserKeys:
        if keys.status == "not_found":
            raise KeychainNotFound()
        if keys.status == "shredded":
            raise KeychainShredded()
        if keys.status == "pending_deletion":
            raise KeychainPendingDeletion()
        return keys

    @staticmethod
    def _open(user_id: str, envelope: bytes, parsed: ParsedEnvelope, keys: UserKeys) -> bytes:
        header = parsed.header
        entry = keys.categories.get(header.category)
        if entry is None:
            raise DecryptionFailed()
        if entry.status == "shredded":
            raise KeychainShredded(header.category)
        return open_parsed(user_id, envelope, parsed, entry.versions.get(header.version))

    def _schedule_call(self, method: str, user_id: str, schedule_id: str) -> ScheduledShred:
        _check_user_id(user_id)
        if not isinstance(schedule_id, str) or _SCHEDULE_ID.fullmatch(schedule_id) is None:
            raise InvalidInput("schedule_id must look like sched-<uuid>")
        return self._call(
            method,
            f"/v1/keychains/{quote(user_id, safe='')}/schedules/{schedule_id}",
            None,
            lambda v: _record(v, ScheduledShred, "scheduleId", _SCHEDULE_ID),
        )

    def _shred(self, user_id: str, path: str) -> ShredOutcome:
        def parse(value: object) -> ShredOutcome:
            if not isinstance(value, dict):
                raise BadResponse("not an object")
            shredded, receipt = value.get("shredded"), value.get("receipt")
            if type(shredded) is not int:
                raise BadResponse("shredded is not a number")
            if (
                not isinstance(receipt, dict)
                or not isinstance(receipt.get("id"), str)
                or not isinstance(receipt.get("jws"), str)
            ):
                raise BadResponse("the shred answer has no receipt")
            return ShredOutcome(shredded, receipt["id"], receipt["jws"])

        try:
            return self._call("DELETE", path, None, parse)
        finally:
            self._lookups.invalidate(user_id)

    def _fetch_batch(self, user_ids: list[str]) -> list[UserKeys]:
        categories = self._options.categories
        payload: dict[str, object] = {"userIds": user_ids}
        if categories is not None:
            payload["categories"] = list(categories)
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._check_open()
        outcome = self._endpoints.call("POST", "/v1/keys/batch-get", body, lambda v: parse_batch(v, user_ids))
        if outcome.refusal is None:
            assert outcome.value is not None
            return outcome.value
        code = outcome.refusal.code
        if code in ("BATCH_TOO_LARGE", "BODY_TOO_LARGE") and len(user_ids) > 1:
            # The server's limits are below this client's: halve, and remember for later batches.
            half = (len(user_ids) + 1) // 2
            if code == "BATCH_TOO_LARGE":
                self._lookups.lower_limits(max_users=half)
            else:
                self._lookups.lower_limits(max_body_bytes=len(body) // 2)
            return self._fetch_batch(user_ids[:half]) + self._fetch_batch(user_ids[half:])
        raise _refusal_error(outcome.refusal)

    def _call(self, method: str, path: str, body: bytes | None, parse: Callable[[object], T]) -> T:
        self._check_open()
        outcome = self._endpoints.call(method, path, body, parse)
        if outcome.refusal is not None:
            raise _refusal_error(outcome.refusal)
        return cast(T, outcome.value)


__all__: Sequence[str] = (
    "BulkResult",
    "CategoryKeysView",
    "LegalHoldRecord",
    "LifecycleStatus",
    "PadlockClient",
    "ScheduledShred",
    "ShredOutcome",
)
