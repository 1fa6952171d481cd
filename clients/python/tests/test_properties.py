"""Property tests (hypothesis) for the envelope and its parser: round trips for every valid
identifier, and no input, however malformed, gets anything but None or DecryptionFailed."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from padlock_client import DecryptionFailed, EnvelopeHeader, read_envelope_header
from padlock_client.envelope import envelope_overhead, open_envelope, seal_envelope
from padlock_client.ids import MAX_VERSION
from padlock_client.secret import SecretKey

user_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}\Z")
categories = st.from_regex(r"\A[a-z][a-z0-9_-]{0,31}\Z")
versions = st.integers(1, MAX_VERSION)
keys = st.binary(min_size=32, max_size=32).map(SecretKey)


@settings(max_examples=300)
@given(keys, user_ids, categories, versions, st.binary(max_size=2048))
def test_seal_then_open_round_trips(key: SecretKey, user: str, category: str, version: int, plaintext: bytes) -> None:
    sealed = seal_envelope(key, user, EnvelopeHeader(category, version), plaintext)
    assert len(sealed) == len(plaintext) + envelope_overhead(category)
    assert read_envelope_header(sealed) == EnvelopeHeader(category, version)
    assert open_envelope(user, sealed, lambda c, n: key if (c, n) == (category, version) else None) == plaintext


@settings(max_examples=300)
@given(keys, user_ids, categories, versions, st.binary(max_size=64), st.data())
def test_any_change_fails(
    key: SecretKey, user: str, category: str, version: int, plaintext: bytes, data: st.DataObject
) -> None:
    sealed = bytearray(seal_envelope(key, user, EnvelopeHeader(category, version), plaintext))
    i = data.draw(st.integers(0, len(sealed) - 1))
    sealed[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(sealed)))
    for changed in (bytes(sealed), bytes(sealed[:cut]) if cut < len(sealed) else None):
        if changed is None:
            continue
        try:
            open_envelope(user, changed, lambda c, n: key)
        except DecryptionFailed:
            continue
        raise AssertionError(f"a changed envelope opened (byte {i}, cut {cut})")


@settings(max_examples=1000)
@given(st.binary(max_size=128))
def test_random_bytes_never_crash_the_parser(envelope: bytes) -> None:
    header = read_envelope_header(envelope)
    if header is not None:
        assert envelope[0] == 1 and envelope[2 : 2 + envelope[1]] == header.category.encode()
        assert struct.unpack_from(">I", envelope, 2 + envelope[1])[0] == header.version
    key = SecretKey(bytes(32))
    try:
        open_envelope("user-1", envelope, lambda c, n: key)
    except DecryptionFailed:
        pass
    else:
        raise AssertionError("random bytes opened")
