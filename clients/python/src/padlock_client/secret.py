"""Key bytes as their own type: never printed, compared in constant time, wiped on request."""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretKey:
    """A 32-byte derived key. ``repr``/``str`` never show the bytes.

    Example::

        key = SecretKey(bytes(32))
        repr(key)  # 'SecretKey(<32 bytes, redacted>)'
    """

    __slots__ = ("_bytes", "_aead")

    def __init__(self, data: bytes | bytearray) -> None:
        self._bytes = bytearray(data)
        self._aead: AESGCM | None = None

    def __len__(self) -> int:
        return len(self._bytes)

    def __repr__(self) -> str:
        return f"SecretKey(<{len(self._bytes)} bytes, redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and hmac.compare_digest(self._bytes, other._bytes)

    def __hash__(self) -> int:
        raise TypeError("SecretKey is not hashable")

    def __reduce__(self) -> str:
        raise TypeError("SecretKey cannot be pickled")

    def expose(self) -> bytes:
        """The key bytes, for the one place that uses them (AES-GCM). Do not keep or log them."""
        return bytes(self._bytes)

    def aead(self) -> AESGCM:
        """AES-256-GCM under this key, made once and kept: a new AESGCM per envelope costs about as much
        as sealing 1 KiB. It holds its own copy of the key (``cryptography`` keeps it as immutable bytes,
        out of wipe()'s reach); wipe() drops it, and the cache drops whole entries when they expire."""
        aead = self._aead
        if aead is None:
            aead = self._aead = AESGCM(bytes(self._bytes))
        return aead

    def wipe(self) -> None:
        """Overwrites the held bytes and drops the AESGCM object (copies made by expose() or held
        inside it are beyond reach, as in any garbage-collected language)."""
        self._aead = None
        for i in range(len(self._bytes)):
            self._bytes[i] = 0
