"""Padlock client for Python: per-user envelope encryption with crypto-shredding, byte-compatible
with the TypeScript SDK (@padlock/client)."""

from .client import (
    BulkResult,
    CategoryKeysView,
    LegalHoldRecord,
    LifecycleStatus,
    PadlockClient,
    ScheduledShred,
    ShredOutcome,
)
from .envelope import EnvelopeHeader, envelope_overhead, read_envelope_header
from .errors import (
    DecryptionFailed,
    FailedAttempt,
    InvalidInput,
    KeychainNotFound,
    KeychainPendingDeletion,
    KeychainShredded,
    LegalHold,
    PadlockClientError,
    PermissionDenied,
    ReceiptInvalid,
    Unavailable,
)
from .options import BatchOptions, CacheOptions, EndpointGroup, PadlockClientOptions, RetryOptions, TlsOptions
from .receipts import ReceiptClaims, verify_receipt
from .secret import SecretKey

__all__ = [
    "BatchOptions",
    "BulkResult",
    "CacheOptions",
    "CategoryKeysView",
    "DecryptionFailed",
    "EndpointGroup",
    "EnvelopeHeader",
    "FailedAttempt",
    "InvalidInput",
    "KeychainNotFound",
    "KeychainPendingDeletion",
    "KeychainShredded",
    "LegalHold",
    "LegalHoldRecord",
    "LifecycleStatus",
    "PadlockClient",
    "PadlockClientError",
    "PadlockClientOptions",
    "PermissionDenied",
    "ReceiptClaims",
    "ReceiptInvalid",
    "RetryOptions",
    "ScheduledShred",
    "SecretKey",
    "ShredOutcome",
    "TlsOptions",
    "Unavailable",
    "envelope_overhead",
    "read_envelope_header",
    "verify_receipt",
]
