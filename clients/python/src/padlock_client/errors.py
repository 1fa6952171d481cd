"""The client's exceptions: one class per outcome a caller handles differently.

Each has a stable ``code``, the same as the TypeScript SDK's (packages/client/src/errors.ts).
Messages never carry key material, credentials or plaintext, and DecryptionFailed never
says why (no oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ClientErrorCode = Literal[
    "KEYCHAIN_SHREDDED",
    "KEYCHAIN_PENDING_DELETION",
    "LEGAL_HOLD",
    "KEYCHAIN_NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAVAILABLE",
    "DECRYPTION_FAILED",
    "INVALID_INPUT",
    "RECEIPT_INVALID",
]


class PadlockClientError(Exception):
    """Base class of every error the client raises; ``code`` is stable across releases."""

    code: ClientErrorCode

    def __init__(self, code: ClientErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class KeychainShredded(PadlockClientError):
    """The user's keys for this data are destroyed: treat the data as deleted. Never retry.

    Example::

        try:
            padlock.decrypt(user_id, record)
        except KeychainShredded:
            delete_record()
    """

    def __init__(self, category: str | None = None) -> None:
        super().__init__(
            "KEYCHAIN_SHREDDED",
            "the user's keychain is shredded; treat the data as deleted"
            if category is None
            else f'the user\'s "{category}" keys are shredded; treat the data as deleted',
        )
        self.category = category


class KeychainPendingDeletion(PadlockClientError):
    """The keys are withheld during a scheduled shred's grace period (serveDuringGrace false)."""

    def __init__(self) -> None:
        super().__init__(
            "KEYCHAIN_PENDING_DELETION",
            "the user's keys are withheld until a scheduled shred (or its cancel)",
        )


class LegalHold(PadlockClientError):
    """A legal hold forbids this shred; it may run after the hold is released."""

    def __init__(self, message: str) -> None:
        super().__init__("LEGAL_HOLD", message)


class KeychainNotFound(PadlockClientError):
    """The user has no keychain (or no key in the category): create it with create_keychain."""

    def __init__(self, category: str | None = None) -> None:
        super().__init__(
            "KEYCHAIN_NOT_FOUND",
            "the user has no keychain" if category is None else f'the user has no key in category "{category}"',
        )
        self.category = category


class PermissionDenied(PadlockClientError):
    """The credential was refused, or the service may not do this."""

    def __init__(self, message: str, server_code: str | None = None) -> None:
        super().__init__("PERMISSION_DENIED", message)
        self.server_code = server_code


@dataclass(frozen=True)
class FailedAttempt:
    """One failed attempt of a request: which endpoint, and what went wrong."""

    group: str
    url: str
    #: CONNECTION_REFUSED, TIMEOUT, HTTP_503 OVERLOADED, ...
    reason: str


class Unavailable(PadlockClientError):
    """No endpoint group answered within the deadline, or the client is closed."""

    def __init__(self, message: str, attempts: tuple[FailedAttempt, ...] = ()) -> None:
        detail = "; ".join(f"{a.group} {a.url}: {a.reason}" for a in attempts)
        super().__init__("UNAVAILABLE", message if detail == "" else f"{message} ({detail})")
        self.attempts = attempts


class DecryptionFailed(PadlockClientError):
    """Tampered, truncated, not an envelope, another user's or service's, or an unknown key
    version: one error and one message for all of them."""

    def __init__(self) -> None:
        super().__init__("DECRYPTION_FAILED", "decryption failed")


class InvalidInput(PadlockClientError):
    """A bad argument or option; the message names it. Nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_INPUT", message)


class ReceiptInvalid(PadlockClientError):
    """A deletion receipt that does not verify; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__("RECEIPT_INVALID", f"the receipt does not verify: {reason}")
        self.reason = reason
