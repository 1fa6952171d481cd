"""Key bytes as their own type: never printed, compared in constant time, wiped on request."""

from __future__ import annotations

import hmac


class SecretKey:
    """A 32-byte derived key. ``repr``/``str`` never show the bytes.

    Example::

        key = SecretKey(bytes(32))
        repr(key)  # 'SecretKey(<32 bytes, redacted>)'
    """

    __slots__ = ("_bytes",)

    def __init__(self, data: bytes | bytearray) -> None:
        self._bytes = bytearray(data)

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

    def wipe(self) -> None:
        """Overwrites the held bytes (copies made by expose() are beyond reach, as in any GC'd language)."""
        for i in range(len(self._bytes)):
            self._bytes[i] = 0
