"""The parsers and checks that take untrusted input: options, the server's keys answers, the
cache's bounds. Each attacked with the inputs it must refuse."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from padlock_client import (
    BatchOptions,
    CacheOptions,
    EndpointGroup,
    InvalidInput,
    PadlockClientOptions,
    RetryOptions,
)
from padlock_client._lookups import KeyCache, KeyLookups
from padlock_client._user_keys import BadResponse, UserKeys, parse_batch, parse_user_keys

KEY = "neYet2ei7hxoKrLyzPhyqQ7FramF7ebGYJIyLB7cu9o"
GOOD: dict[str, Any] = {
    "userId": "u-1",
    "status": "ok",
    "maxAgeSeconds": 29,
    "categories": [
        {
            "category": "profile",
            "status": "ok",
            "current": 2,
            "keys": [{"version": 1, "key": KEY}, {"version": 2, "key": KEY}],
        },
        {"category": "advertising", "status": "shredded"},
    ],
}


def test_a_good_answer_parses() -> None:
    keys = parse_user_keys(GOOD, "u-1")
    assert keys.max_age_seconds == 29
    assert keys.categories["profile"].current == 2 and sorted(keys.categories["profile"].versions) == [1, 2]
    assert keys.categories["advertising"].status == "shredded"
    assert KEY not in repr(keys) and "redacted" in repr(keys)
    assert parse_user_keys(GOOD, "u-1", ("advertising",)).categories.keys() == {"advertising"}
    assert parse_user_keys({"userId": "u-1", "status": "shredded"}, "u-1").status == "shredded"


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


BAD_ANSWERS = {
    "not an object": [],
    "another user": _mutated(["userId"], "u-2"),
    "unknown status": _mutated(["status"], "gone"),
    "negative maxAge": _mutated(["maxAgeSeconds"], -1),
    "float maxAge": _mutated(["maxAgeSeconds"], 1.5),
    "bool maxAge": _mutated(["maxAgeSeconds"], True),
    "no maxAge": _mutated(["maxAgeSeconds"], ...),
    "categories not a list": _mutated(["categories"], {}),
    "bad category name": _mutated(["categories", 0, "category"], "Profile"),
    "repeated category": _mutated(["categories", 1], copy.deepcopy(GOOD["categories"][0])),
    "no keys": _mutated(["categories", 0, "keys"], []),
    "current not among keys": _mutated(["categories", 0, "current"], 3),
    "current 0": _mutated(["categories", 0, "current"], 0),
    "repeated version": _mutated(["categories", 0, "keys", 1, "version"], 1),
    "version 2^31": _mutated(["categories", 0, "keys", 1, "version"], 2**31),
    "short key": _mutated(["categories", 0, "keys", 0, "key"], KEY[:-1]),
    "padded key": _mutated(["categories", 0, "keys", 0, "key"], KEY + "="),
    "standard base64 key": _mutated(["categories", 0, "keys", 0, "key"], "+" + KEY[1:]),
    "non-canonical last character": _mutated(["categories", 0, "keys", 0, "key"], KEY[:-1] + "p"),
    "key not a string": _mutated(["categories", 0, "keys", 0, "key"], 7),
}


@pytest.mark.parametrize("name", BAD_ANSWERS)
def test_malformed_answers_are_refused(name: str) -> None:
    # A malformed answer counts as the endpoint failing (the next group is asked), never as "no key".
    with pytest.raises(BadResponse):
        parse_user_keys(BAD_ANSWERS[name], "u-1")


def test_batch_answers_must_match_the_ids_sent() -> None:
    assert [
        k.user_id for k in parse_batch({"results": [GOOD, {"userId": "u-2", "status": "not_found"}]}, ["u-1", "u-2"])
    ] == ["u-1", "u-2"]
    bodies: list[object] = [
        {"results": [GOOD]},
        {"results": [{"userId": "u-2", "status": "not_found"}, GOOD]},
        {"results": {}},
        [],
    ]
    for body in bodies:
        with pytest.raises(BadResponse):
            parse_batch(body, ["u-1", "u-2"])


GROUP = (EndpointGroup("g", ("http://127.0.0.1:8700",)),)
BAD_OPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "no groups": ({"groups": ()}, "1 to 16"),
    "a URL not an EndpointGroup": ({"groups": ("http://x",)}, "1 to 16"),
    "twice the same group": ({"groups": GROUP * 2}, "same name"),
    "credential with a space": ({"credential": "a b"}, "printable ASCII"),
    "credential with a newline": ({"credential": "ab\n"}, "printable ASCII"),
    "no credential, no certificate": ({"credential": None}, "credential is required"),
    "timeout 0": ({"timeout_ms": 0}, "timeout_ms"),
    "timeout as float": ({"timeout_ms": 1.5}, "timeout_ms"),
    "timeout as bool": ({"timeout_ms": True}, "timeout_ms"),
    "deadline below timeout": ({"timeout_ms": 1000, "deadline_ms": 999}, "at least timeout_ms"),
    "empty categories": ({"categories": ()}, "non-empty"),
    "bad category": ({"categories": ("Profile",)}, "lower-case"),
    "repeated category": ({"categories": ("profile", "profile")}, "twice"),
    "batch not BatchOptions": ({"batch": {"max_users": 5}}, "BatchOptions"),
    "retry not RetryOptions": ({"retry": {"max_retries": 5}}, "RetryOptions"),
}


@pytest.mark.parametrize("name", BAD_OPTIONS)
def test_bad_options_are_refused_with_their_name(name: str) -> None:
    changes, message = BAD_OPTIONS[name]
    settings: dict[str, Any] = {"groups": GROUP, "credential": "pl1.app.x"}
    settings.update(changes)
    with pytest.raises(InvalidInput, match=message):
        PadlockClientOptions(**settings)


@pytest.mark.parametrize(
    "url",
    ["ftp://h", "http://user:pw@h", "http://h/?q", "http://h/#f", "http://", "h:8700", "http://h:99999", 7],
)
def test_bad_urls_are_refused(url: Any) -> None:
    with pytest.raises(InvalidInput, match="http: or https:"):
        EndpointGroup("g", (url,))


def test_limits_of_sections() -> None:
    for make in (
        lambda: RetryOptions(max_retries=11),
        lambda: RetryOptions(budget_ratio=1.5),
        lambda: RetryOptions(base_delay_ms=100, max_delay_ms=50),
        lambda: BatchOptions(max_users=0),
        lambda: BatchOptions(max_body_bytes=10),
        lambda: CacheOptions(max_entries=0),
        lambda: CacheOptions(max_ttl_ms=0),
    ):
        with pytest.raises(InvalidInput):
            make()
    with pytest.raises(InvalidInput, match="group name"):
        EndpointGroup("bad name", ("http://h",))
    listed: Any = ["http://h/padlock/"]  # a list is accepted and frozen into a tuple
    assert EndpointGroup("g", listed).urls == ("http://h/padlock",)
    assert "pl1.app.secret" not in repr(PadlockClientOptions(groups=GROUP, credential="pl1.app.secret"))


def _keys(user: str, max_age: int = 30) -> UserKeys:
    return parse_user_keys({**GOOD, "userId": user, "maxAgeSeconds": max_age}, user)


def test_cache_is_lru_bounded_and_expires() -> None:
    cache = KeyCache(max_entries=2)
    cache.set(_keys("a"), 10.0)
    cache.set(_keys("b"), 10.0)
    assert cache.get("a", 1.0) is not None  # a is now the most recently used
    cache.set(_keys("c"), 10.0)
    assert cache.get("b", 1.0) is None and cache.get("a", 1.0) is not None and len(cache) == 2
    assert cache.get("a", 10.0) is None  # expired at its own time


def test_lookups_cache_within_max_age_counted_from_the_send() -> None:
    now = [100.0]
    sent: list[list[str]] = []

    def fetch(users: list[str]) -> list[UserKeys]:
        sent.append(users)
        now[0] += 0.5  # the answer arrives half a second after the request left
        return [_keys(u, max_age=2) for u in users]

    lookups = KeyLookups(fetch, BatchOptions(), CacheOptions(max_ttl_ms=60_000), 13, clock=lambda: now[0])
    lookups.get("a")
    now[0] = 101.9
    lookups.get("a")
    assert len(sent) == 1
    now[0] = 102.0  # 2 s after the send, though only 1.5 s after the answer
    lookups.get("a")
    assert len(sent) == 2
    # maxAgeSeconds 0: used once, never cached.
    lookups_zero = KeyLookups(lambda users: [_keys(u, max_age=0) for u in users], BatchOptions(), CacheOptions(), 13)
    lookups_zero.get("z")
    lookups_zero.get("z")
    assert lookups_zero.batches == 2


def test_chunks_respect_users_and_body_bytes() -> None:
    sent: list[list[str]] = []

    def fetch(users: list[str]) -> list[UserKeys]:
        sent.append(users)
        return [_keys(u) for u in users]

    lookups = KeyLookups(fetch, BatchOptions(max_users=3, max_body_bytes=1024), None, 13)
    found = lookups.get_many([f"user-{i}" for i in range(7)] + ["user-0"])
    assert [len(c) for c in sent] == [3, 3, 1] and len(found) == 7
    sent.clear()
    long_ids = ["x" * 120 + str(i) for i in range(20)]
    KeyLookups(fetch, BatchOptions(max_body_bytes=1024), None, 13).get_many(long_ids)
    assert all(13 + sum(len(u) + 3 for u in chunk) <= 1024 for chunk in sent) and sum(map(len, sent)) == 20


def test_lifecycle_records_ignore_new_fields_and_refuse_missing_ones() -> None:
    import re

    from padlock_client.client import LegalHoldRecord, _record

    hold = {
        "holdId": "hold-2b0f8d4e-6c1a-4f0e-9d55-1b7d6a3c9e01",
        "userId": "u-1",
        "category": None,
        "reason": "case",
        "placedBy": "app",
        "placedAt": "2026-12-01T09:12:44.019Z",
        "releasedAt": None,
        "releasedBy": None,
        "state": "in_force",
        "verified": True,
    }
    pattern = re.compile(r"hold-[0-9a-f-]{36}")
    assert _record({**hold, "addedLater": 1}, LegalHoldRecord, "holdId", pattern).placed_by == "app"
    with pytest.raises(BadResponse, match="lacks"):
        _record({k: v for k, v in hold.items() if k != "state"}, LegalHoldRecord, "holdId", pattern)
    with pytest.raises(BadResponse):
        _record({**hold, "holdId": "nope"}, LegalHoldRecord, "holdId", pattern)
