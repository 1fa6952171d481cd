"""Receipt verification against packages/server/vectors/receipt.json (docs/spec.md section 9)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from padlock_client import ReceiptInvalid, verify_receipt

from .padlock_processes import vectors_file

RECEIPTS: dict[str, Any] = json.loads(vectors_file("packages", "server", "vectors", "receipt.json").read_text())
JWKS = RECEIPTS["jwks"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


RECEIPT_CASES = [c for c in RECEIPTS["cases"] if c["typ"] == "padlock-receipt+jwt"]


def test_the_file_holds_receipts_and_a_checkpoint() -> None:
    assert len(RECEIPT_CASES) == 2 and len(RECEIPTS["cases"]) == 3


def test_an_audit_checkpoint_is_not_a_receipt() -> None:
    # Same key, valid signature, but another typ: a checkpoint must not pass as a deletion receipt.
    checkpoint = next(c for c in RECEIPTS["cases"] if c["typ"] != "padlock-receipt+jwt")
    with pytest.raises(ReceiptInvalid) as raised:
        verify_receipt(checkpoint["jws"], JWKS)
    assert "typ" in raised.value.reason


@pytest.mark.parametrize("case", RECEIPT_CASES, ids=lambda c: c["name"])
def test_receipt_vector(case: dict[str, Any]) -> None:
    claims = verify_receipt(case["jws"], JWKS)
    payload = case["payload"]
    assert claims.sub == payload["sub"] and claims.jti == payload["jti"]
    assert claims.shredded_at == payload["shreddedAt"] and claims.scope == payload["scope"]
    assert claims.schedule_id == payload["scheduleId"]
    assert [c.category for c in claims.categories] == [c["category"] for c in payload["categories"]]


@pytest.mark.parametrize("case", RECEIPT_CASES, ids=lambda c: c["name"])
def test_signing_the_canonical_payload_with_the_seed_gives_the_vector_byte_for_byte(case: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RECEIPTS["seed"]))
    kid = JWKS["keys"][0]["kid"]
    signing_input = (
        f"{b64url(canonical({'alg': 'EdDSA', 'kid': kid, 'typ': case['typ']}))}.{b64url(canonical(case['payload']))}"
    )
    assert f"{signing_input}.{b64url(key.sign(signing_input.encode()))}" == case["jws"]


def test_every_changed_character_fails() -> None:
    jws = next(c["jws"] for c in RECEIPTS["cases"] if c["typ"] == "padlock-receipt+jwt")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(jws):
        if ch == ".":
            continue
        # Two replacements per position, one of which differs in the last character's unused bits.
        for replacement in {alphabet[(alphabet.index(ch) + 1) % 64], alphabet[(alphabet.index(ch) + 32) % 64]}:
            with pytest.raises(ReceiptInvalid):
                verify_receipt(jws[:i] + replacement + jws[i + 1 :], JWKS)


def test_refusals_name_the_check() -> None:
    jws = next(c["jws"] for c in RECEIPTS["cases"] if c["typ"] == "padlock-receipt+jwt")
    header, payload, signature = jws.split(".")
    other_jwks = copy.deepcopy(JWKS)
    other_jwks["keys"][0]["kid"] = "another"
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RECEIPTS["seed"]))

    def signed(h: dict[str, object]) -> str:
        head = b64url(canonical(h))
        return f"{head}.{payload}.{b64url(key.sign(f'{head}.{payload}'.encode()))}"

    kid = JWKS["keys"][0]["kid"]
    cases = {
        "two parts": (f"{header}.{payload}", JWKS, "canonical base64url"),
        "padding": (f"{header}.{payload}.{signature}=", JWKS, "canonical base64url"),
        "unknown kid": (jws, other_jwks, "kid"),
        "no keys": (jws, {}, "keys array"),
        "alg none": (signed({"alg": "none", "kid": kid, "typ": "padlock-receipt+jwt"}), JWKS, "EdDSA"),
        "wrong typ": (signed({"alg": "EdDSA", "kid": kid, "typ": "JWT"}), JWKS, "typ"),
        "crit header": (
            signed({"alg": "EdDSA", "crit": ["x"], "kid": kid, "typ": "padlock-receipt+jwt"}),
            JWKS,
            "parameters",
        ),
        "another key's signature": (
            f"{header}.{payload}.{b64url(Ed25519PrivateKey.generate().sign(f'{header}.{payload}'.encode()))}",
            JWKS,
            "signature",
        ),
        "too long": ("a" * 70000, JWKS, "64 KiB"),
    }
    for name, (token, jwks, reason) in cases.items():
        with pytest.raises(ReceiptInvalid) as raised:
            verify_receipt(token, jwks)
        assert reason in raised.value.reason, name
        assert raised.value.code == "RECEIPT_INVALID"
