"""First contact through the CLI: `hvlab up --sim` of a lab whose hosts to join have no
bootstrap credential stops at the first host it reaches, naming the credential and the fix
(exit 1), having changed nothing; the seed (bootstrap_credential: local-admin) builds, with
the local and domain Administrator passwords different, as on real hosts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from hvlab.labs import LabRegistry, for_mode
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.fleet import Fleet
from tests.sim.conftest import SEED
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts


def _without_bootstrap(path: Path) -> Path:
    text = re.sub(r"\n\s+bootstrap_credential: local-admin", "", SEED.read_text())
    assert "bootstrap_credential:" not in text
    path.write_text(text)
    return path


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    return _without_bootstrap(tmp_path / "lab.yaml")


@pytest.fixture
def fleet(lab_file: Path, tmp_path: Path) -> Iterator[Fleet]:
    """The fleet of the lab without bootstrap credentials: SVR1 and SVR2 have local
    Administrator passwords of their own (the lab does not say them)."""
    spec = load_lab(lab_file)
    with Fleet(spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as running:
        LabRegistry(tmp_path).register(for_mode(spec, sim=True), sim=True)
        yield running


async def test_up_without_bootstrap_credentials_fails_at_first_contact(
    client: Client, task_queue: str, fleet: Fleet, lab_file: Path, cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 1; the output names the host, the lab credential it tried and the fix
    (bootstrap_credential); no host received a command that changes anything."""
    async with lab_worker(client, task_queue, fleet):
        capsys.readouterr()
        assert await hvlab("up", str(lab_file), "--sim", "--watch") == 1
    said = capsys.readouterr()
    text = " ".join((said.out + said.err).split())
    assert "sim.classroom-build ended failed" in text, text
    verdict = text.split("sim.classroom-build ended failed", 1)[1]  # the CLI's, not the worker's
    assert "BootstrapCredentialMissing: SVR" in verdict, verdict
    assert "lab credential 'domain-admin'" in verdict, verdict
    assert "add `bootstrap_credential:" in verdict and "local Administrator" in verdict, verdict
    assert {host: counts for host, counts in mutating_counts(fleet).items() if counts} == {}
    assert fleet.state()["hosts"]["SVR1"]["domain"] is None


def test_seed_names_a_bootstrap_credential_for_each_host_to_join() -> None:
    """The example lab: every host the build joins has one (the DC has none)."""
    seed: LabSpec = load_lab(SEED)
    joining = [h.name for h in seed.hosts if h.join_domain and h.role.value != "dc"]
    assert joining == ["SVR1", "SVR2"]
    assert all(seed.host(name).bootstrap_credential == "local-admin" for name in joining)
    assert seed.host("DC1").bootstrap_credential is None
