"""Deletion receipt verification (docs/spec.md section 9), written against the spec with
``cryptography``'s Ed25519, so a client never trusts the server's own reading of its receipts."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ReceiptInvalid

RECEIPT_TYP = "padlock-receipt+jwt"
MAX_RECEIPT_LENGTH = 65536


@dataclass(frozen=True)
class ShreddedVersion:
    version: int
    shredded_at: int


@dataclass(frozen=True)
class ShreddedCategory:
    category: str
    versions: tuple[ShreddedVersion, ...]


@dataclass(frozen=True)
class ReceiptClaims:
    """What a verified receipt attests."""

    iss: Literal["padlock"]
    jti: str
    sub: str
    iat: int
    shredded_at: int
    scope: Literal["keychain", "category"]
    categories: tuple[ShreddedCategory, ...]
    requested_by: str
    schedule_id: str | None


def b64url_decode(part: str) -> bytes:
    """Canonical unpadded base64url only: a changed last character (unused bits) must not pass."""
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise ReceiptInvalid("not a compact JWS in canonical base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != part:
        raise ReceiptInvalid("not a compact JWS in canonical base64url")
    return raw


def kid_of(jws: str) -> str | None:
    """The kid the protected header names, or None when it cannot be read."""
    try:
        header = json.loads(b64url_decode(jws.split(".")[0]))
    except (ReceiptInvalid, ValueError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _public_key(jwks: object, kid: str) -> Ed25519PublicKey:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise ReceiptInvalid("the JWKS has no keys array")
    for jwk in keys:
        if isinstance(jwk, dict) and jwk.get("kid") == kid:
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("alg", "EdDSA") != "EdDSA":
                raise ReceiptInvalid("the published key is not an Ed25519 key")
            x = jwk.get("x")
            raw = b64url_decode(x) if isinstance(x, str) else b""
            if len(raw) != 32:
                raise ReceiptInvalid("the published key is not an Ed25519 key")
            return Ed25519PublicKey.from_public_bytes(raw)
    raise ReceiptInvalid("no published key has the receipt's kid")


def _int(value: object) -> int:
    if type(value) is not int:
        raise ReceiptInvalid("the claims are not a Padlock receipt")
    return value


def _claims(payload: object) -> ReceiptClaims:
    if not isinstance(payload, dict):
        raise ReceiptInvalid("the claims are not a Padlock receipt")
    p = cast(dict[str, object], payload)
    categories = p.get("categories")
    schedule_id = p.get("scheduleId")
    if (
        p.get("iss") != "padlock"
        or not isinstance(p.get("jti"), str)
        or not isinstance(p.get("sub"), str)
        or p.get("scope") not in ("keychain", "category")
        or not isinstance(categories, list)
        or not isinstance(p.get("requestedBy"), str)
        or not (schedule_id is None or isinstance(schedule_id, str))
    ):
        raise ReceiptInvalid("the claims are not a Padlock receipt")
    parsed: list[ShreddedCategory] = []
    for c in categories:
        if not isinstance(c, dict) or not isinstance(c.get("category"), str) or not isinstance(c.get("versions"), list):
            raise ReceiptInvalid("the claims are not a Padlock receipt")
        versions = []
        for v in c["versions"]:
            if not isinstance(v, dict):
                raise ReceiptInvalid("the claims are not a Padlock receipt")
            versions.append(ShreddedVersion(_int(v.get("version")), _int(v.get("shreddedAt"))))
        parsed.append(ShreddedCategory(c["category"], tuple(versions)))
    return ReceiptClaims(
        iss="padlock",
        jti=cast(str, p["jti"]),
        sub=cast(str, p["sub"]),
        iat=_int(p.get("iat")),
        shredded_at=_int(p.get("shreddedAt")),
        scope=cast(Literal["keychain", "category"], p["scope"]),
        categories=tuple(parsed),
        requested_by=cast(str, p["requestedBy"]),
        schedule_id=schedule_id,
    )


def verify_receipt(jws: str, jwks: object) -> ReceiptClaims:
    """Verifies a compact JWS receipt against a JWKS (``GET /v1/receipts/keys``); raises ReceiptInvalid.

    Example::

        claims = verify_receipt(outcome.receipt_jws, jwks)  # claims.sub == "alice"
    """
    if not isinstance(jws, str) or len(jws) > MAX_RECEIPT_LENGTH:
        raise ReceiptInvalid("not a compact JWS of at most 64 KiB")
    jws = jws.strip()
    parts = jws.split(".")
    if len(parts) != 3:
        raise ReceiptInvalid("not a compact JWS in canonical base64url")
    header_bytes, payload_bytes, signature = (b64url_decode(p) for p in parts)
    try:
        header = json.loads(header_bytes)
    except ValueError:
        raise ReceiptInvalid("the header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        raise ReceiptInvalid("alg is not EdDSA")
    if set(header) - {"alg", "kid", "typ"}:
        # A crit or other header parameter this verifier does not understand must not be ignored (RFC 7515 4.1.11).
        raise ReceiptInvalid("the header has parameters a receipt does not")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise ReceiptInvalid("the header has no kid")
    key = _public_key(jwks, kid)
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise ReceiptInvalid("the signature does not verify with the published keys") from None
    if header.get("typ") != RECEIPT_TYP:
        raise ReceiptInvalid(f"typ is not {RECEIPT_TYP}")
    try:
        payload = json.loads(payload_bytes)
    except ValueError:
        raise ReceiptInvalid("the payload is not JSON") from None
    return _claims(payload)
