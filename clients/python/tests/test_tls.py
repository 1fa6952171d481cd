"""The client over HTTPS against real `padlock serve` processes with certificates made for the
test: a trusted CA, an untrusted one, and a client certificate that alone authenticates."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from padlock_client import (
    EndpointGroup,
    InvalidInput,
    PadlockClient,
    PadlockClientOptions,
    PermissionDenied,
    TlsOptions,
    Unavailable,
)

from .padlock_processes import Deployment, PadlockProcess, make_pki


@pytest.fixture(scope="module")
def pki() -> Iterator[dict[str, str]]:
    directory = Path(tempfile.mkdtemp(prefix="padlock-py-tls-"))
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def mtls(pki: dict[str, str]) -> Iterator[tuple[Deployment, PadlockProcess]]:
    deployment = Deployment(
        tls={
            "certFile": pki["serverCert"],
            "keyFile": pki["serverKey"],
            "clientCertificates": {"caFile": pki["clientsCa"], "mode": "certificate-only"},
        }
    )
    try:
        deployment.cli("service", "tls-identities", "app", "--tls-identity", "spiffe://test/app")
        yield deployment, deployment.start("tls")
    finally:
        deployment.close()


def client(url: str, tls: TlsOptions, credential: str | None) -> PadlockClient:
    return PadlockClient(
        PadlockClientOptions(
            groups=(EndpointGroup("g", (url,)),), credential=credential, tls=tls, timeout_ms=10_000, deadline_ms=20_000
        )
    )


def test_trusts_the_given_ca_and_presents_the_certificate(
    mtls: tuple[Deployment, PadlockProcess], pki: dict[str, str]
) -> None:
    deployment, server = mtls
    tls = TlsOptions(ca_file=pki["ca"], cert_file=pki["appCert"], key_file=pki["appKey"])
    # The certificate is bound to "app": the reader's credential beside it is refused, as the server says it is
    # (an HTTP answer, so the handshake with the given CA and client certificate succeeded).
    with client(server.url, tls, deployment.credentials["reader"]) as padlock:
        with pytest.raises(PermissionDenied) as raised:
            padlock.create_keychain("tls-user")
    assert raised.value.server_code == "UNAUTHENTICATED"


def test_refuses_a_server_its_ca_did_not_issue(mtls: tuple[Deployment, PadlockProcess], pki: dict[str, str]) -> None:
    _, server = mtls
    tls = TlsOptions(ca_file=pki["otherCa"], cert_file=pki["appCert"], key_file=pki["appKey"])
    with client(server.url, tls, None) as padlock:
        with pytest.raises(Unavailable) as raised:
            padlock.create_keychain("tls-user")
    assert [a.reason for a in raised.value.attempts] == ["TLS_ERROR"]


def test_without_a_client_certificate_there_is_no_answer(
    mtls: tuple[Deployment, PadlockProcess], pki: dict[str, str]
) -> None:
    deployment, server = mtls
    with client(server.url, TlsOptions(ca_file=pki["ca"]), deployment.credentials["app"]) as padlock:
        with pytest.raises(Unavailable):
            padlock.create_keychain("tls-user")


def test_a_client_certificate_authenticates_alone(mtls: tuple[Deployment, PadlockProcess], pki: dict[str, str]) -> None:
    _, server = mtls
    tls = TlsOptions(ca_file=pki["ca"], cert_file=pki["appCert"], key_file=pki["appKey"])
    with client(server.url, tls, None) as padlock:
        assert padlock.create_keychain("tls-user") in (True, False)
        assert padlock.decrypt_text("tls-user", padlock.encrypt("tls-user", "profile", "over mTLS")) == "over mTLS"


def test_tls_options_are_checked(pki: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="go together"):
        TlsOptions(ca_file=pki["ca"], cert_file=pki["appCert"])
    with pytest.raises(InvalidInput, match="readable PEM file"):
        TlsOptions(ca_file="/nonexistent/ca.pem")
    with pytest.raises(InvalidInput, match="no URL in groups is https"):
        PadlockClientOptions(
            groups=(EndpointGroup("g", ("http://127.0.0.1:1",)),), credential="x.y", tls=TlsOptions(ca_file=pki["ca"])
        )
    with pytest.raises(InvalidInput, match="credential is required"):
        PadlockClientOptions(groups=(EndpointGroup("g", ("https://127.0.0.1:1",)),), tls=TlsOptions(ca_file=pki["ca"]))
