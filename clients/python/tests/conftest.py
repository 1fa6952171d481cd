from __future__ import annotations

from collections.abc import Iterator

import pytest

from .padlock_processes import Deployment, PadlockProcess


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    d = Deployment(max_staleness_seconds=2)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="session")
def primary(deployment: Deployment) -> PadlockProcess:
    return deployment.start("padlock")


@pytest.fixture(scope="session")
def mirror(deployment: Deployment) -> PadlockProcess:
    return deployment.start("padlock-mirror")
