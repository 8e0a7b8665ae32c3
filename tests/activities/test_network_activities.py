"""Network activities against the simulated fleet: a WinNAT network (NAT kind host-netnat)
on SVR1 in front of the Internal switch, its port forwards, conflicts and the compensation."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.models import HostNatInput, RemoveHostNatInput
from activities.network import NetworkActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec, NatGateway, NatKind, PortForward
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import hyperv_ready, run


@pytest.fixture
def network(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> NetworkActivities:
    hyperv_ready(fleet.sim, "SVR1")
    return NetworkActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def lab_nat(lab_spec: LabSpec) -> HostNatInput:
    """WinNAT on SVR1 for the Internal switch's subnet, forwarding 2323 to win2003-2's
    Telnet and 35000 to an address given directly."""
    nat = NatGateway(name="LabNat", kind=NatKind.host_netnat, host="SVR1", external="Ethernet0",
                     internal=["Internal"], forwards=[
                         PortForward(external_port=2323, to_vm="win2003-2", internal_port=23),
                         PortForward(external_port=35000, to_ip="10.10.10.3",
                                     internal_port=3389)])
    return HostNatInput.from_spec(lab_spec, nat)


def test_host_nat_once_with_its_forwards(
    fleet: Fleet, lab_nat: HostNatInput, network: NetworkActivities
) -> None:
    """New-NetNat for the Internal subnet and one static mapping per forward; the rerun
    sends no mutating command."""
    assert lab_nat.internal_prefix == "10.10.10.0/24"
    assert [f.internal_ip for f in lab_nat.forwards] == ["10.10.10.2", "10.10.10.3"]
    first = network.host_nat(lab_nat)
    assert first.changed and first.observed["created"] is True
    netnat = fleet.state()["hosts"]["SVR1"]["netnat"]["LabNat"]
    assert netnat["internal_prefix"] == "10.10.10.0/24"
    assert [(m["protocol"], m["external_port"], m["internal_ip"], m["internal_port"])
            for m in netnat["mappings"]] == [("TCP", 2323, "10.10.10.2", 23),
                                             ("TCP", 35000, "10.10.10.3", 3389)]
    before = mutations(fleet, "SVR1")
    again = network.host_nat(lab_nat)
    assert not again.changed and again.observed["added"] == []
    assert mutations(fleet, "SVR1") == before


def test_host_nat_adds_a_missing_forward(
    fleet: Fleet, lab_nat: HostNatInput, network: NetworkActivities
) -> None:
    network.host_nat(lab_nat.model_copy(update={"forwards": lab_nat.forwards[:1]}))
    result = network.host_nat(lab_nat)
    assert result.changed and result.observed["created"] is False
    assert [m["external_port"] for m in result.observed["added"]] == [35000]


def test_another_nat_network_or_mapping_is_a_conflict(
    fleet: Fleet, lab_nat: HostNatInput, network: NetworkActivities
) -> None:
    """WinNAT allows one NAT network per host, and an external port maps to one target."""
    assert run(fleet.sim, "SVR1", "New-NetNat", Name="Other",
               InternalIPInterfaceAddressPrefix="10.20.0.0/16").ok
    with pytest.raises(ApplicationError) as caught:
        network.host_nat(lab_nat)
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert "one NAT network per host" in caught.value.message
    assert mutations(fleet, "SVR1")["New-NetNat"] == 1  # the test's own: the step sent none
    assert run(fleet.sim, "SVR1", "Remove-NetNat", Name="Other").ok
    moved = lab_nat.forwards[0].model_copy(update={"internal_ip": "10.10.10.9"})
    network.host_nat(lab_nat)
    with pytest.raises(ApplicationError) as caught:
        network.host_nat(lab_nat.model_copy(update={"forwards": [moved]}))
    assert caught.value.type == "Conflict" and "already maps to 10.10.10.2:23" in \
        caught.value.message


def test_remove_host_nat_once(
    fleet: Fleet, lab_nat: HostNatInput, network: NetworkActivities
) -> None:
    """The compensation removes the mappings and the NAT network; already gone is success."""
    network.host_nat(lab_nat)
    removal = RemoveHostNatInput(host="SVR1", name="LabNat")
    assert network.remove_host_nat(removal).changed
    assert fleet.state()["hosts"]["SVR1"]["netnat"] == {}
    before = mutations(fleet, "SVR1")
    assert not network.remove_host_nat(removal).changed
    assert mutations(fleet, "SVR1") == before
