"""The fault matrix reuses the workflow tests' fixtures: a real dev server (session), a fleet
of the seed lab at instant speed on ephemeral ports under a temp HVLAB_HOME, the seed spec and
the CLI environment (see tests/workflows/conftest.py).

Every fault test runs twice: against the seed's English hosts and against a copy whose hosts
are all ``locale: ko-KR`` (issue 13, acceptance 2): a Korean Windows Server words its errors,
warnings and display names in Korean, and hvlab must classify its failures the same (by
HRESULT, message id, FullyQualifiedErrorId or exception type, never by English text)."""

from __future__ import annotations

import pytest

from hvlab.labs import for_mode
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from tests.sim.conftest import SEED
from tests.workflows.conftest import cli_env, fleet

__all__ = ["cli_env", "fleet", "locale", "seed"]

LOCALES = ("en-US", "ko-KR")


@pytest.fixture(params=LOCALES)
def locale(request: pytest.FixtureRequest) -> str:
    """The display language of every host of the fleet."""
    return str(request.param)


@pytest.fixture
def seed(locale: str) -> LabSpec:
    """The seed lab as `--sim` commands hand it to workflows (lab id ``sim.classroom``), its
    hosts all of ``locale``; ``fleet`` builds its hosts from it."""
    spec = for_mode(load_lab(SEED), sim=True)
    return spec.model_copy(update={
        "hosts": [h.model_copy(update={"locale": locale}) for h in spec.hosts]})
