"""Every JSON vector in the repository that applies to a client, read from the files the
TypeScript tests read: the envelope (valid and must-fail), the derivation, Wycheproof HKDF."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from padlock_client import DecryptionFailed, EnvelopeHeader, read_envelope_header
from padlock_client.derive import derive_info, derive_key, hkdf_sha256
from padlock_client.envelope import (
    envelope_aad,
    envelope_header,
    open_envelope,
    seal_envelope,
    seal_envelope_with_nonce,
)
from padlock_client.secret import SecretKey

from .padlock_processes import vectors_file, wycheproof_file

ENVELOPE: dict[str, Any] = json.loads(vectors_file("packages", "client", "vectors", "envelope.json").read_text())
DERIVE: dict[str, Any] = json.loads(vectors_file("packages", "core", "vectors", "derive.json").read_text())


def test_the_files_hold_what_the_spec_says() -> None:
    assert len(ENVELOPE["vectors"]) == 10
    assert len(ENVELOPE["invalid"]) == 15
    assert len(DERIVE["vectors"]) == 10


@pytest.mark.parametrize("v", ENVELOPE["vectors"], ids=lambda v: v["name"])
def test_envelope_vector(v: dict[str, Any]) -> None:
    key = SecretKey(bytes.fromhex(v["key"]))
    header = envelope_header(v["category"], v["version"])
    assert header.hex() == v["header"]
    assert envelope_aad(header, v["userId"]).hex() == v["aad"]
    plaintext = bytes.fromhex(v["plaintext"])
    sealed = seal_envelope_with_nonce(
        key, v["userId"], EnvelopeHeader(v["category"], v["version"]), plaintext, bytes.fromhex(v["nonce"])
    )
    assert sealed.hex() == v["envelope"]
    envelope = bytes.fromhex(v["envelope"])
    assert read_envelope_header(envelope) == EnvelopeHeader(v["category"], v["version"])
    keys = {(v["category"], v["version"]): key}
    assert open_envelope(v["userId"], envelope, lambda c, n: keys.get((c, n))) == plaintext
    # A second implementation: raw AES-GCM with the framing of docs/spec.md section 6, done by hand.
    n = len(header)
    raw = AESGCM(bytes.fromhex(v["key"])).decrypt(envelope[n : n + 12], envelope[n + 12 :], bytes.fromhex(v["aad"]))
    assert raw == plaintext


@pytest.mark.parametrize("v", ENVELOPE["invalid"], ids=lambda v: v["name"])
def test_envelope_must_fail(v: dict[str, Any]) -> None:
    keys = {(k["category"], k["version"]): SecretKey(bytes.fromhex(k["key"])) for k in v["keys"]}
    with pytest.raises(DecryptionFailed) as raised:
        open_envelope(v["userId"], bytes.fromhex(v["envelope"]), lambda c, n: keys.get((c, n)))
    assert str(raised.value) == "decryption failed"


def test_every_single_byte_flip_of_every_vector_fails() -> None:
    for v in ENVELOPE["vectors"]:
        key = SecretKey(bytes.fromhex(v["key"]))
        envelope = bytes.fromhex(v["envelope"])

        def key_for(category: str, version: int, key: SecretKey = key) -> SecretKey:
            return key

        for i in range(len(envelope)):
            flipped = bytearray(envelope)
            flipped[i] ^= 0x01
            with pytest.raises(DecryptionFailed):
                open_envelope(v["userId"], bytes(flipped), key_for)


def test_every_truncation_fails() -> None:
    v = ENVELOPE["vectors"][1]
    key = SecretKey(bytes.fromhex(v["key"]))
    envelope = bytes.fromhex(v["envelope"])
    for length in range(len(envelope)):
        with pytest.raises(DecryptionFailed):
            open_envelope(v["userId"], envelope[:length], lambda c, n: key)


def test_header_parser_refuses_what_the_grammar_refuses() -> None:
    good = envelope_header("profile", 1) + bytes(28)
    assert read_envelope_header(good) == EnvelopeHeader("profile", 1)
    cases = {
        "format 2": b"\x02" + good[1:],
        "category length 33": b"\x01\x21" + b"a" * 33 + bytes(32),
        "upper-case category": envelope_header("profile", 1).replace(b"profile", b"Profile") + bytes(28),
        "non-ASCII category": b"\x01\x02\xc3\xa9" + (1).to_bytes(4, "big") + bytes(28),
        "version 0": envelope_header("profile", 1)[:-4] + bytes(4) + bytes(28),
        "version 2^31": envelope_header("profile", 1)[:-4] + (2**31).to_bytes(4, "big") + bytes(28),
        "one byte short": good[:-1],
        "empty": b"",
        "one byte": b"\x01",
    }
    for name, envelope in cases.items():
        assert read_envelope_header(envelope) is None, name


def test_seal_uses_a_fresh_nonce_and_round_trips() -> None:
    key = SecretKey(bytes(range(32)))
    a = seal_envelope(key, "user-1", EnvelopeHeader("profile", 3), b"same")
    b = seal_envelope(key, "user-1", EnvelopeHeader("profile", 3), b"same")
    assert a != b
    assert open_envelope("user-1", a, lambda c, n: key if (c, n) == ("profile", 3) else None) == b"same"
    # The AAD binds the user: the same key under another user id fails.
    with pytest.raises(DecryptionFailed):
        open_envelope("user-2", a, lambda c, n: key)


def test_secret_key_never_prints_its_bytes() -> None:
    raw = bytes.fromhex("69f26a33dd65973ff9534e8dcaa1ecb4a01d407af41721c53e5d55c05f839df5")
    key = SecretKey(raw)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert raw.hex() not in text and "69f26a" not in text
        assert "redacted" in text
    assert key == SecretKey(raw) and key != SecretKey(bytes(32))
    envelope = seal_envelope(key, "user-1", EnvelopeHeader("profile", 1), b"x")  # makes and keeps its AESGCM
    key.wipe()
    assert key.expose() == bytes(32)
    # The kept AESGCM went with the bytes: the wiped key now seals under zeros, not under the old key.
    zeros = SecretKey(bytes(32))
    resealed = seal_envelope(key, "user-1", EnvelopeHeader("profile", 1), b"x")
    assert open_envelope("user-1", resealed, lambda c, n: zeros) == b"x"
    with pytest.raises(DecryptionFailed):
        open_envelope("user-1", envelope, lambda c, n: key)


@pytest.mark.parametrize("v", DERIVE["vectors"], ids=lambda v: v["name"])
def test_derive_vector(v: dict[str, Any]) -> None:
    info = derive_info(v["serviceId"], v["category"], v["version"], v["userId"])
    assert info.hex() == v["info"]
    assert derive_key(bytes.fromhex(v["rootKey"]), bytes.fromhex(v["serviceKey"]), info).hex() == v["derivedKey"]


def _wycheproof_cases() -> list[dict[str, Any]]:
    data = json.loads(wycheproof_file("hkdf_sha256_test.json").read_text())
    cases = [t for g in data["testGroups"] for t in g["tests"]]
    assert len(cases) == data["numberOfTests"]
    return cases


@pytest.mark.parametrize("t", _wycheproof_cases(), ids=lambda t: f"tc{t['tcId']}")
def test_wycheproof_hkdf_sha256(t: dict[str, Any]) -> None:
    ikm, salt, info = (bytes.fromhex(t[k]) for k in ("ikm", "salt", "info"))
    if t["result"] == "valid":
        assert hkdf_sha256(ikm, salt, info, t["size"]).hex() == t["okm"]
    else:
        # Invalid here means an output size above 255 * 32 (RFC 5869 section 2.3): refused, not truncated.
        with pytest.raises(ValueError):
            hkdf_sha256(ikm, salt, info, t["size"])
