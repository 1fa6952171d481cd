from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from .padlock_processes import Deployment, PadlockProcess

# Hypothesis's files beside the other generated ones (dist/, ignored by git and the linters), and no
# per-example deadline: timing belongs in benchmarks, and this machine is shared.
set_hypothesis_home_dir(str(Path(__file__).resolve().parents[1] / "dist" / "hypothesis"))
settings.register_profile("padlock", deadline=None)
settings.load_profile("padlock")


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
