"""Client options: validated once at construction, frozen. Unknown fields are impossible
(dataclasses), wrong values raise InvalidInput naming the option."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import InvalidInput
from .ids import CATEGORY_MESSAGE, is_category

_GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CREDENTIAL = re.compile(r"[\x21-\x7e]{1,1024}")


def _integer(value: object, where: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidInput(f"{where} must be an integer from {low} to {high}")
    return value


@dataclass(frozen=True)
class EndpointGroup:
    """One deployment group (e.g. ``padlock``, then ``padlock-mirror``); requests rotate over its URLs."""

    name: str
    urls: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _GROUP_NAME.fullmatch(self.name) is None:
            raise InvalidInput('group name must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-"')
        urls = tuple(self.urls) if isinstance(self.urls, (list, tuple)) else ()
        if not 1 <= len(urls) <= 64:
            raise InvalidInput(f"group {self.name}: urls must be 1 to 64 base URLs")
        object.__setattr__(self, "urls", tuple(_base_url(u, self.name) for u in urls))


def _base_url(value: object, group: str) -> str:
    message = f"group {group}: each URL must be http: or https: without credentials, query or fragment"
    if not isinstance(value, str) or "?" in value or "#" in value:
        raise InvalidInput(message)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput(message) from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise InvalidInput(message)
    # A path prefix (a proxy mounting Padlock under /padlock) is kept, without its trailing slash.
    return value.rstrip("/")


@dataclass(frozen=True)
class CacheOptions:
    #: Users whose keys are held at most.
    max_entries: int = 10_000
    #: A cap on how long keys are held; the server's maxAgeSeconds always applies too.
    max_ttl_ms: int = 60_000

    def __post_init__(self) -> None:
        _integer(self.max_entries, "cache.max_entries", 1, 10_000_000)
        _integer(self.max_ttl_ms, "cache.max_ttl_ms", 1, 86_400_000)


@dataclass(frozen=True)
class BatchOptions:
    #: User ids per batch-get at most: the server's limits.maxBatch.
    max_users: int = 500
    #: Request body bytes per batch-get at most: the server's limits.maxBodyBytes.
    max_body_bytes: int = 65536
    #: Batch-gets in flight at once; lookups made meanwhile wait and go out together in the next one.
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        _integer(self.max_users, "batch.max_users", 1, 10_000)
        _integer(self.max_body_bytes, "batch.max_body_bytes", 1024, 16_777_216)
        _integer(self.max_in_flight, "batch.max_in_flight", 1, 64)


@dataclass(frozen=True)
class RetryOptions:
    """Opt-in retries: after every group failed, wait (full jitter) and go round the groups again.
    Padlock fails fast by default; callers decide."""

    #: Extra rounds over the groups per call.
    max_retries: int = 2
    #: Tokens a call that is not a retry adds to the budget; a retry spends 1 (at most 10 % extra load).
    budget_ratio: float = 0.1
    #: The budget's size, and its content at start.
    budget_max: int = 10
    #: The n-th retry waits a random time up to min(max_delay_ms, base_delay_ms * 2^(n-1)).
    base_delay_ms: int = 20
    max_delay_ms: int = 200

    def __post_init__(self) -> None:
        _integer(self.max_retries, "retry.max_retries", 0, 10)
        if type(self.budget_ratio) not in (int, float) or not 0 <= self.budget_ratio <= 1:
            raise InvalidInput("retry.budget_ratio must be a number from 0 to 1")
        _integer(self.budget_max, "retry.budget_max", 0, 1_000_000)
        _integer(self.base_delay_ms, "retry.base_delay_ms", 0, 60_000)
        _integer(self.max_delay_ms, "retry.max_delay_ms", 0, 60_000)
        if self.max_delay_ms < self.base_delay_ms:
            raise InvalidInput("retry.max_delay_ms must be at least retry.base_delay_ms")


@dataclass(frozen=True)
class TlsOptions:
    """TLS for https: URLs. The server's name is always verified against its certificate."""

    #: PEM file of the CA certificate(s) to trust instead of the system store.
    ca_file: str | None = None
    #: PEM client certificate (then any intermediates) for mutual TLS; needs key_file.
    cert_file: str | None = None
    #: PEM private key of cert_file (unencrypted).
    key_file: str | None = None

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and (not isinstance(path, str) or not os.path.isfile(path)):
                raise InvalidInput(f"tls.{name} must be the path of a readable PEM file")
        if (self.cert_file is None) != (self.key_file is None):
            raise InvalidInput("tls.cert_file and tls.key_file go together: set both or neither")


@dataclass(frozen=True)
class PadlockClientOptions:
    """Everything a PadlockClient is built from.

    Example::

        PadlockClientOptions(
            groups=(EndpointGroup("padlock", ("http://padlock-1:8700",)),
                    EndpointGroup("padlock-mirror", ("http://padlock-mirror:8700",))),
            credential=os.environ["PADLOCK_CREDENTIAL"],
        )
    """

    #: Deployment groups in order of preference; a failing group's requests go to the next.
    groups: tuple[EndpointGroup, ...]
    #: Sent as ``Authorization: Bearer <credential>``; may be None when tls.cert_file authenticates alone.
    credential: str | None = field(default=None, repr=False)
    #: Categories to fetch keys for; default every category the service may read.
    categories: tuple[str, ...] | None = None
    #: Timeout of one HTTP attempt (connect, and each read) in milliseconds.
    timeout_ms: int = 500
    #: Time for a whole call, failover included.
    deadline_ms: int = 2000
    #: After a failure an endpoint is tried last for this many ms.
    down_ms: int = 1000
    #: Open keep-alive connections per base URL at most.
    max_connections: int = 32
    batch: BatchOptions = BatchOptions()
    #: None fetches keys for every operation (still coalesced).
    cache: CacheOptions | None = CacheOptions()
    #: None (the default): no retries, Padlock fails fast.
    retry: RetryOptions | None = None
    tls: TlsOptions | None = None

    def __post_init__(self) -> None:
        groups = tuple(self.groups) if isinstance(self.groups, (list, tuple)) else ()
        if not 1 <= len(groups) <= 16 or not all(isinstance(g, EndpointGroup) for g in groups):
            raise InvalidInput("groups must be 1 to 16 EndpointGroup")
        if len({g.name for g in groups}) != len(groups):
            raise InvalidInput("groups: two groups have the same name")
        object.__setattr__(self, "groups", groups)
        if self.credential is None:
            if self.tls is None or self.tls.cert_file is None:
                raise InvalidInput("credential is required, unless tls.cert_file authenticates the service on its own")
        elif not isinstance(self.credential, str) or _CREDENTIAL.fullmatch(self.credential) is None:
            raise InvalidInput("credential must be 1-1024 printable ASCII characters without spaces")
        if self.categories is not None:
            categories = tuple(self.categories) if isinstance(self.categories, (list, tuple)) else ()
            if len(categories) == 0:
                raise InvalidInput("categories must be a non-empty sequence of category names")
            for c in categories:
                if not is_category(c):
                    raise InvalidInput(f"categories: {CATEGORY_MESSAGE}")
            if len(set(categories)) != len(categories):
                raise InvalidInput("categories names a category twice")
            object.__setattr__(self, "categories", categories)
        _integer(self.timeout_ms, "timeout_ms", 1, 60_000)
        _integer(self.deadline_ms, "deadline_ms", 1, 300_000)
        if self.deadline_ms < self.timeout_ms:
            raise InvalidInput("deadline_ms must be at least timeout_ms")
        _integer(self.down_ms, "down_ms", 0, 600_000)
        _integer(self.max_connections, "max_connections", 1, 1024)
        if not isinstance(self.batch, BatchOptions):
            raise InvalidInput("batch must be a BatchOptions")
        if self.cache is not None and not isinstance(self.cache, CacheOptions):
            raise InvalidInput("cache must be a CacheOptions or None")
        if self.retry is not None and not isinstance(self.retry, RetryOptions):
            raise InvalidInput("retry must be a RetryOptions or None")
        if self.tls is not None:
            if not isinstance(self.tls, TlsOptions):
                raise InvalidInput("tls must be a TlsOptions")
            if not any(u.startswith("https:") for g in groups for u in g.urls):
                raise InvalidInput("tls is set, but no URL in groups is https:")
