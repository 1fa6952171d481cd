"""A user's derived keys as Padlock serves them (the keys object of docs/api.md), parsed
strictly: a malformed answer counts as that endpoint failing, never as "no key"."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Literal, cast

from .ids import is_category, is_version
from .secret import SecretKey

KeyStatus = Literal["ok", "shredded", "not_found", "pending_deletion"]
_STATUSES = frozenset(("ok", "shredded", "not_found", "pending_deletion"))
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")


class BadResponse(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(f"malformed response: {what}")


@dataclass(frozen=True)
class CategoryKeys:
    status: KeyStatus
    #: The newest version (new data is encrypted with it); 0 when the category has no live key.
    current: int
    versions: dict[int, SecretKey]


@dataclass(frozen=True)
class UserKeys:
    user_id: str
    status: KeyStatus
    categories: dict[str, CategoryKeys]
    #: How long these keys may be cached, per the server.
    max_age_seconds: int

    def wipe(self) -> None:
        for category in self.categories.values():
            for key in category.versions.values():
                key.wipe()


def _record(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise BadResponse(f"{what} is not an object")
    return cast(dict[str, object], value)


def _status(value: object, what: str) -> KeyStatus:
    if not isinstance(value, str) or value not in _STATUSES:
        raise BadResponse(f"{what}.status is unknown")
    return cast(KeyStatus, value)


def parse_user_keys(value: object, user_id: str, only: tuple[str, ...] | None = None) -> UserKeys:
    """One user's keys; ``only`` keeps just those categories (a create answers with all readable ones)."""
    body = _record(value, "result")
    if body.get("userId") != user_id:
        raise BadResponse("result for another user")
    user_status = _status(body.get("status"), "result")
    if user_status != "ok":
        return UserKeys(user_id, user_status, {}, 0)
    max_age = body.get("maxAgeSeconds")
    if type(max_age) is not int or max_age < 0:
        raise BadResponse("maxAgeSeconds is not a non-negative integer")
    listed = body.get("categories")
    if not isinstance(listed, list):
        raise BadResponse("categories is not an array")
    categories: dict[str, CategoryKeys] = {}
    for item in listed:
        entry = _record(item, "category")
        name = entry.get("category")
        if not is_category(name) or name in categories:
            raise BadResponse("category name")
        assert isinstance(name, str)
        if only is not None and name not in only:
            continue
        category_status = _status(entry.get("status"), "category")
        versions: dict[int, SecretKey] = {}
        current = 0
        if category_status == "ok":
            keys = entry.get("keys")
            current_value = entry.get("current")
            if not isinstance(keys, list) or len(keys) == 0 or not is_version(current_value):
                raise BadResponse("category keys")
            current = cast(int, current_value)
            for k in keys:
                key = _record(k, "key")
                version = key.get("version")
                text = key.get("key")
                if (
                    not is_version(version)
                    or version in versions
                    or not isinstance(text, str)
                    or _KEY_TEXT.fullmatch(text) is None
                ):
                    raise BadResponse("key entry")
                raw = base64.urlsafe_b64decode(text + "=")
                # 43 characters hold 258 bits: the last character's 2 spare bits must be zero.
                if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
                    raise BadResponse("key entry")
                versions[cast(int, version)] = SecretKey(raw)
            if current not in versions:
                raise BadResponse("current version has no key")
        categories[name] = CategoryKeys(category_status, current, versions)
    return UserKeys(user_id, user_status, categories, max_age)


def parse_batch(value: object, user_ids: list[str]) -> list[UserKeys]:
    """A batch-get answer: one result per requested user id, in order."""
    results = _record(value, "body").get("results")
    if not isinstance(results, list) or len(results) != len(user_ids):
        raise BadResponse("results do not match the user ids sent")
    return [parse_user_keys(result, user_ids[i]) for i, result in enumerate(results)]
