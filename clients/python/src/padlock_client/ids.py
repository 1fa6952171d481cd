"""Identifier grammars (docs/spec.md section 2). Every grammar is ASCII."""

from __future__ import annotations

import re

USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")
CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SERVICE_ID = re.compile(r"[a-z][a-z0-9-]{1,63}")
MAX_VERSION = 2**31 - 1

USER_ID_MESSAGE = "user_id must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit"
CATEGORY_MESSAGE = "category must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter"


def is_user_id(value: object) -> bool:
    # fullmatch, not match with $: "$" also matches before a trailing newline.
    return isinstance(value, str) and USER_ID.fullmatch(value) is not None


def is_category(value: object) -> bool:
    return isinstance(value, str) and CATEGORY.fullmatch(value) is not None


def is_service_id(value: object) -> bool:
    return isinstance(value, str) and SERVICE_ID.fullmatch(value) is not None


def is_version(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_VERSION
