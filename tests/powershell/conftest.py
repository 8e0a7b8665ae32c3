"""Fixtures for the session-pool tests: the seed lab and its simulated fleet (instant speed,
ephemeral ports on 127.0.0.x, one password for every credential), one fleet per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.fleet import Fleet
from tests.sim.conftest import SEED


@pytest.fixture(scope="module")
def lab_spec() -> LabSpec:
    return load_lab(SEED)


@pytest.fixture
def fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    """One password for every credential reference of the lab (so the local and the domain
    Administrator share it, and the domain credential logs on to a workgroup host through
    NTLM's fallback to the local account of the same name: these tests are about the pool,
    not the first contact; tests/powershell/test_bootstrap.py is)."""
    with Fleet(lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0, password=secrets.token_urlsafe(18)) as running:
        yield running
