"""The envelope: a self-describing AES-256-GCM ciphertext (docs/spec.md section 6). Pure: no I/O.

header   = u8(0x01) || u8(len(category)) || category || u32(version)
envelope = header || nonce(12) || ciphertext || tag(16)
AAD      = header || lp(userId)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from .errors import DecryptionFailed, InvalidInput
from .ids import CATEGORY, is_category, is_user_id, is_version
from .secret import SecretKey

ENVELOPE_FORMAT = 0x01
NONCE_LENGTH = 12
TAG_LENGTH = 16
KEY_LENGTH = 32
MAX_CATEGORY_LENGTH = 32


@dataclass(frozen=True)
class EnvelopeHeader:
    """What an envelope's header says, before anything is authenticated."""

    category: str
    version: int


def envelope_overhead(category: str) -> int:
    """Bytes added to the plaintext: 1 + 1 + len(category) + 4 + 12 + 16."""
    return 2 + len(category) + 4 + NONCE_LENGTH + TAG_LENGTH


@dataclass(frozen=True)
class ParsedEnvelope:
    header: EnvelopeHeader
    #: Bytes of the header: the first half of the AAD.
    header_length: int


def parse_envelope(envelope: bytes) -> ParsedEnvelope | None:
    """The header of a well-formed envelope and its length; None otherwise. Nothing is authenticated."""
    if len(envelope) < 2 or envelope[0] != ENVELOPE_FORMAT:
        return None
    category_length = envelope[1]
    if category_length == 0 or category_length > MAX_CATEGORY_LENGTH:
        return None
    header_length = 2 + category_length + 4
    if len(envelope) < header_length + NONCE_LENGTH + TAG_LENGTH:
        return None
    raw = envelope[2 : 2 + category_length]
    # The grammar is ASCII: check the bytes before decoding, so no byte is ever reinterpreted.
    if CATEGORY.fullmatch(raw.decode("latin-1")) is None:
        return None
    (version,) = struct.unpack_from(">I", envelope, 2 + category_length)
    if not is_version(version):
        return None
    return ParsedEnvelope(EnvelopeHeader(raw.decode("ascii"), version), header_length)


def read_envelope_header(envelope: bytes) -> EnvelopeHeader | None:
    """The category and key version an envelope names, or None when it is not well formed.

    Nothing is authenticated: use it to route or to find records under an old version.

    Example::

        read_envelope_header(stored)  # EnvelopeHeader(category='profile', version=1)
    """
    if not isinstance(envelope, (bytes, bytearray, memoryview)):
        return None
    parsed = parse_envelope(bytes(envelope))
    return None if parsed is None else parsed.header


def envelope_header(category: str, version: int) -> bytes:
    """The header bytes of (category, version)."""
    encoded = category.encode("ascii")
    return bytes((ENVELOPE_FORMAT, len(encoded))) + encoded + struct.pack(">I", version)


def envelope_aad(header: bytes, user_id: str) -> bytes:
    """header || lp(userId). User ids are ASCII by grammar, so characters and bytes coincide."""
    encoded = user_id.encode("ascii")
    return header + struct.pack(">H", len(encoded)) + encoded


def seal_envelope(key: SecretKey, user_id: str, header: EnvelopeHeader, plaintext: bytes) -> bytes:
    """Encrypts ``plaintext`` for ``user_id`` under the key of (category, version), fresh random nonce.

    A random nonce keeps each key within NIST SP 800-38D's bound only up to 2^32 encryptions.
    """
    return seal_envelope_with_nonce(key, user_id, header, plaintext, os.urandom(NONCE_LENGTH))


def seal_envelope_with_nonce(
    key: SecretKey, user_id: str, header: EnvelopeHeader, plaintext: bytes, nonce: bytes
) -> bytes:
    """Deterministic seal, for test vectors only: a repeated nonce under one key breaks GCM."""
    if len(key) != KEY_LENGTH:
        raise InvalidInput("key must be 32 bytes")
    if not is_user_id(user_id):
        raise InvalidInput("user_id does not match the user id grammar")
    if not is_category(header.category):
        raise InvalidInput("category does not match the category grammar")
    if not is_version(header.version):
        raise InvalidInput("version must be an integer from 1 to 2147483647")
    if len(nonce) != NONCE_LENGTH:
        raise InvalidInput("nonce must be 12 bytes")
    head = envelope_header(header.category, header.version)
    sealed = key.aead().encrypt(nonce, bytes(plaintext), envelope_aad(head, user_id))
    return head + nonce + sealed


def open_envelope(
    user_id: str,
    envelope: bytes,
    key_for: Callable[[str, int], SecretKey | None],
) -> bytes:
    """Decrypts an envelope for ``user_id``; ``key_for(category, version)`` gives the key or None.

    Every failure, from a malformed header to a bad tag, is one DecryptionFailed. The plaintext
    is released only after the tag verifies (AESGCM.decrypt checks it before returning).
    """
    if not is_user_id(user_id):
        raise InvalidInput("user_id does not match the user id grammar")
    if not isinstance(envelope, (bytes, bytearray, memoryview)):
        raise DecryptionFailed()
    data = bytes(envelope)
    parsed = parse_envelope(data)
    if parsed is None:
        raise DecryptionFailed()
    return open_parsed(user_id, data, parsed, key_for(parsed.header.category, parsed.header.version))


def open_parsed(user_id: str, data: bytes, parsed: ParsedEnvelope, key: SecretKey | None) -> bytes:
    """open_envelope once the envelope is parsed and its key looked up (the client's hot path)."""
    if key is None or len(key) != KEY_LENGTH:
        raise DecryptionFailed()
    n = parsed.header_length
    try:
        return key.aead().decrypt(data[n : n + NONCE_LENGTH], data[n + NONCE_LENGTH :], envelope_aad(data[:n], user_id))
    except InvalidTag:
        raise DecryptionFailed() from None
