"""What a first contact reads from a host (the rules behind `hvlab doctor`'s checks; sources in
docs/simulator-fidelity.md, "First contact")."""

from __future__ import annotations

from simulator import gaps
from simulator.cmdlets.preflight import CATEGORIES
from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.winrm.records import shipped_powershell
from simulator.world import SimFile
from tests.sim.conftest import join_domain, run

GB = 1024**3


def _one(sim: Sim, host: str, **params: object) -> object:
    result = run(sim, host, "Get-CimInstance", **params)
    assert result.ok, result.failure
    return result.output[0]


def test_powershell_is_the_one_the_windows_version_ships() -> None:
    """5.1 from Windows Server 2016 (10.0.14393), 4.0 on 2012 R2, 3.0 on 2012."""
    assert shipped_powershell("10.0.17763").startswith("5.1.17763.")
    assert shipped_powershell("6.3.9600") == "4.0"
    assert shipped_powershell("6.2.9200") == "3.0"
    assert shipped_powershell("6.1.7601") == "2.0"


def test_the_computer_reports_its_own_name(sim: Sim) -> None:
    """A host installed under another name reports that name, not the lab's."""
    gaps.apply(sim.world, [gaps.Gap(host="SVR2", kind="computer_name", name="WIN-7Q2K4M1")])
    system = _one(sim, "SVR2", ClassName="Win32_ComputerSystem")
    assert prop(system, "Name") == "WIN-7Q2K4M1"
    assert prop(_one(sim, "SVR2", ClassName="Win32_OperatingSystem"), "CSName") == "WIN-7Q2K4M1"


def test_free_space_is_capacity_less_the_files(sim: Sim) -> None:
    """A file written to C: takes its size from the volume's free space."""
    before = prop(_one(sim, "SVR1", ClassName="Win32_LogicalDisk"), "FreeSpace")
    sim.host("SVR1").put_file(SimFile(path="C:\\Hyper-V\\VHDs\\x.vhdx", size=3 * GB))
    after = prop(_one(sim, "SVR1", ClassName="Win32_LogicalDisk"), "FreeSpace")
    assert before - after == 3 * GB


def test_a_joined_host_is_on_a_domain_authenticated_network(sim: Sim) -> None:
    """A workgroup host's profile is its own (Public with the gap); after the join the
    network is DomainAuthenticated."""
    gaps.apply(sim.world, [gaps.Gap(host="SVR1", kind="network_public")])
    profile = dict(Namespace="root/StandardCimv2", ClassName="MSFT_NetConnectionProfile")
    assert prop(_one(sim, "SVR1", **profile), "NetworkCategory") == CATEGORIES["Public"]
    join_domain(sim, "SVR1")
    assert prop(_one(sim, "SVR1", **profile), "NetworkCategory") == (
        CATEGORIES["DomainAuthenticated"])


def test_dns_answers_come_from_the_dcs_dns_server(sim: Sim) -> None:
    """The DC's DNS server answers for the DC; a computer is in the zone once it is joined,
    under its own name; a stopped DNS Server service times out (by error id)."""
    query = dict(Type="A", Server="192.168.1.100", DnsOnly=None)
    dc = run(sim, "SVR1", "Resolve-DnsName", Name="dc1.kosa.vm", **query)
    assert dc.ok and prop(dc.output[0], "IPAddress") == "192.168.1.100"
    missing = run(sim, "SVR1", "Resolve-DnsName", Name="svr2.kosa.vm", **query)
    assert missing.error_ids[0].startswith("DNS_ERROR_RCODE_NAME_ERROR,")
    join_domain(sim, "SVR2")
    joined = run(sim, "SVR1", "Resolve-DnsName", Name="svr2.kosa.vm", **query)
    assert joined.ok and prop(joined.output[0], "IPAddress") == "192.168.1.120"
    sim.host("DC1").services["DNS"] = "Stopped"
    stopped = run(sim, "SVR1", "Resolve-DnsName", Name="dc1.kosa.vm", **query)
    assert stopped.error_ids[0].startswith("ERROR_TIMEOUT,")
    assert stopped.output == []
