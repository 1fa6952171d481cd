"""The interop program of /work/wt/INTEROP.md (docs: clients/python/README.md): one JSON request
per stdin line, one JSON answer per stdout line, configured from PADLOCK_INTEROP_* variables."""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from typing import Any

from padlock_client import (
    CacheOptions,
    EndpointGroup,
    InvalidInput,
    PadlockClient,
    PadlockClientError,
    PadlockClientOptions,
    TlsOptions,
)


def client_from_env() -> PadlockClient:
    """The client the INTEROP.md variables describe; exits 1 with a clear message when they are wrong."""
    try:
        groups = [EndpointGroup("padlock", tuple(os.environ["PADLOCK_INTEROP_URLS"].split(",")))]
        mirror = os.environ.get("PADLOCK_INTEROP_MIRROR_URLS", "")
        if mirror:
            groups.append(EndpointGroup("padlock-mirror", tuple(mirror.split(","))))
        ca = os.environ.get("PADLOCK_INTEROP_CA") or None
        cache_ms = int(os.environ.get("PADLOCK_INTEROP_CACHE_MS") or "60000")
        return PadlockClient(
            PadlockClientOptions(
                groups=tuple(groups),
                credential=os.environ["PADLOCK_INTEROP_CREDENTIAL"],
                timeout_ms=5000,
                deadline_ms=10000,
                cache=None if cache_ms == 0 else CacheOptions(max_ttl_ms=cache_ms),
                tls=None if ca is None else TlsOptions(ca_file=ca),
            )
        )
    except KeyError as missing:
        sys.exit(f"interop: {missing.args[0]} is not set")
    except (ValueError, PadlockClientError) as error:
        sys.exit(f"interop: bad configuration: {error}")


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput("data must be standard base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("data must be standard base64") from None


def _text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return value


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def handle(padlock: PadlockClient, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "encrypt":
        return {
            "ok": True,
            "data": _encode(
                padlock.encrypt(_text(request, "user"), _text(request, "category"), _b64(request.get("data")))
            ),
        }
    if op == "decrypt":
        return {"ok": True, "data": _encode(padlock.decrypt(_text(request, "user"), _b64(request.get("data"))))}
    if op == "create":
        padlock.create_keychain(_text(request, "user"))
        return {"ok": True}
    if op == "shred":
        return {"ok": True, "receipt": padlock.shred_keychain(_text(request, "user")).receipt_jws}
    if op == "shredCategory":
        outcome = padlock.shred_category(_text(request, "user"), _text(request, "category"))
        return {"ok": True, "receipt": outcome.receipt_jws}
    if op == "forget":
        padlock.forget(_text(request, "user"))
        return {"ok": True}
    if op == "bulkDecrypt":
        records = request.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InvalidInput("records must be an array of {user, data}")
        results = padlock.decrypt_many((_text(r, "user"), _b64(r.get("data"))) for r in records)
        return {
            "ok": True,
            "results": [
                {"ok": True, "data": _encode(r.plaintext)}
                if r.plaintext is not None
                else {"ok": False, "code": r.error.code if r.error is not None else "UNAVAILABLE"}
                for r in results
            ],
        }
    raise InvalidInput(f"unknown op {op!r}" if isinstance(op, str) else "op must be a string")


def main() -> int:
    padlock = client_from_env()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise InvalidInput("a request is one JSON object")
                answer = handle(padlock, request)
            except ValueError:
                answer = {"ok": False, "code": "INVALID_INPUT", "message": "a request is one JSON object per line"}
            except PadlockClientError as error:
                answer = {"ok": False, "code": error.code, "message": error.message}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        padlock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
