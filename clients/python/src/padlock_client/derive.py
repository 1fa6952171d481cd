"""Key derivation as the server does it (docs/spec.md section 3), for checks against derive.json.

A client never derives keys itself (it receives derived keys); this module lets a client-side
implementation be checked against the same vectors as the server, and documents the binding.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import InvalidInput
from .ids import is_category, is_service_id, is_user_id, is_version

DERIVE_LABEL = b"padlock/v1/derive"


def _lp(text: str) -> bytes:
    encoded = text.encode("utf-8")
    if len(encoded) > 0xFFFF:
        raise InvalidInput("a length-prefixed field is longer than 65535 bytes")
    return struct.pack(">H", len(encoded)) + encoded


def derive_info(service_id: str, category: str, version: int, user_id: str) -> bytes:
    """ "padlock/v1/derive" || lp(serviceId) || lp(category) || u32(version) || lp(userId)."""
    if not is_service_id(service_id):
        raise InvalidInput("service_id does not match the service id grammar")
    if not is_category(category):
        raise InvalidInput("category does not match the category grammar")
    if not is_version(version):
        raise InvalidInput("version must be an integer from 1 to 2147483647")
    if not is_user_id(user_id):
        raise InvalidInput("user_id does not match the user id grammar")
    return DERIVE_LABEL + _lp(service_id) + _lp(category) + struct.pack(">I", version) + _lp(user_id)


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) via ``cryptography``; an empty salt means 32 zero bytes (section 2.2)."""
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(ikm)


def derive_key(root_key: bytes, service_key: bytes, info: bytes) -> bytes:
    """HKDF-SHA256(IKM = root key, salt = service derivation key, info, L = 32)."""
    if len(root_key) != 32 or len(service_key) != 32:
        raise InvalidInput("root and service keys must be 32 bytes")
    return hkdf_sha256(root_key, service_key, info, 32)
