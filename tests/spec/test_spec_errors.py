"""Invalid lab files are rejected with every problem named by YAML path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvlab.specfile import SpecError, load_lab, parse_lab

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
BASE = SEED.read_text()

# (name, old text, new text, expected path, expected words in the message)
BROKEN = [
    ("unknown switch", "{name: Internal, switch: Internal, ipv4: 10.10.10.2/24",
     "{name: Internal, switch: Nope, ipv4: 10.10.10.2/24", "vms[1].nics[0].switch", "'Nope'"),
    ("ip outside subnet", "10.10.10.2/24, gateway: 10.10.10.1", "10.10.30.2/24, gateway: 10.10.30.1",
     "vms[1].nics[0].ipv4", "outside subnet 10.10.10.0/24"),
    ("duplicate ip", "ipv4: 10.10.20.2/24", "ipv4: 10.10.20.1/24", "vms[2].nics[0].ipv4",
     "already used by win2003-1/Internal2"),
    ("duplicate vm", "  - name: win2003-3\n", "  - name: win2003-2\n", "vms[2].name",
     "duplicate VM 'win2003-2'"),
    ("memory unit", "memory: 1GB", "memory: 12XB", "vms[3].memory", "'12XB'"),
    ("memory granularity", "memory: 1GB", "memory: 33MB", "vms[3].memory", "multiple of 2MB"),
    ("memory minimum", "memory: 1GB", "memory: 16MB", "vms[3].memory", "32MB"),
    ("port range", "port: 8080", "port: 70000", "replication[0].port", "70000"),
    ("unknown host", "    host: SVR2\n    generation: 2", "    host: SVR9\n    generation: 2",
     "vms[3].host", "unknown host 'SVR9'"),
    ("semicolon in name", "name: win2003-2\n", "name: win2003;2\n", "vms[1].name", "contains ;"),
    ("host name too long", "name: SVR2\n", "name: SVR2-IS-FAR-TOO-LONG\n", "hosts[2].name", "15"),
    ("missing credential", "credential: guest-admin\n      rdp", "credential: nobody\n      rdp",
     "vms[2].guest.credential", "unknown credential 'nobody'"),
    ("literal secret", "secret: env:HVLAB_TELUSER_PASSWORD", "secret: Pa55w0rd",
     "credentials.teluser.secret", "never write the password"),
    ("replication frequency", "frequency: 300", "frequency: 60", "replication[0].frequency",
     "30, 300 or 900"),
    ("unknown field", "lab: classroom", "lab: classroom\nlabb: x", "labb", "unknown field"),
    ("unknown golden", "{golden: linux-golden", "{golden: nope", "vms[3].disk.golden",
     "unknown golden image 'nope'"),
    ("share not defined", "path: \\\\DC1\\smb\n", "path: \\\\DC1\\nosuch\n", "vms[2].path",
     "\\\\DC1\\nosuch"),
    ("bad switch type", "type: Private", "type: Bridged", "hosts[1].switches[2].type", "Bridged"),
    ("gateway outside", "gateway: 192.168.1.2, dns", "gateway: 192.168.9.2, dns",
     "vms[0].nics[0].gateway", "outside"),
    ("forward to unknown vm", "to_vm: win2003-2", "to_vm: win2003-9", "nat[0].forwards[0].to_vm",
     "unknown VM"),
    ("replica same host", "replica: SVR1", "replica: SVR2", "replication[0].replica",
     "another host"),
    ("dc role", "dc: DC1", "dc: SVR1", "domain.dc", "role dc"),
    ("linux under the windows template", "    generation: 2\n    memory: 1GB\n",
     "    generation: 2\n    secure_boot_template: MicrosoftWindows\n    memory: 1GB\n",
     "vms[3].secure_boot_template", "halts it in firmware; use MicrosoftUEFICertificateAuthority"),
    ("secure boot on generation 1", "  - name: win2003-2\n", "  - name: win2003-2\n"
     "    secure_boot: false\n", "vms[1].secure_boot", "generation 2 only"),
    ("reset without a time zone",
     "  timezone: Asia/Seoul     # the class's zone (required); 06:00 UTC would be 15:00 in Seoul\n",
     "", "reset", "timezone is required"),
    ("reset in an unknown time zone", "timezone: Asia/Seoul ", "timezone: Seoul/Gangnam ",
     "reset.timezone", "not an IANA time zone"),
    ("unknown template", "    generation: 2\n    memory: 1GB\n",
     "    generation: 2\n    secure_boot_template: Nope\n    memory: 1GB\n",
     "vms[3].secure_boot_template", "Nope"),
]


@pytest.mark.parametrize(("name", "old", "new", "path", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_copy_names_path_and_value(name: str, old: str, new: str, path: str, words: str) -> None:
    """Each broken copy of the seed raises SpecError naming the offending path and value."""
    assert old in BASE, f"test fixture out of date: {old!r} not in the seed"
    with pytest.raises(SpecError) as info:
        parse_lab(BASE.replace(old, new, 1), "broken.yaml")
    matching = [i for i in info.value.issues if i.path == path]
    assert matching, f"no issue at {path}: {[str(i) for i in info.value.issues]}"
    assert any(words in i.message for i in matching), [i.message for i in matching]
    assert all(i.line is not None and i.line > 0 for i in matching)


def test_all_problems_reported_at_once() -> None:
    """Several cross-reference problems in one file are all reported, not only the first."""
    text = BASE.replace("switch: Internal, ipv4: 10.10.10.2/24", "switch: Nope, ipv4: 10.10.10.2/24")
    text = text.replace("credential: guest-admin\n      rdp", "credential: nobody\n      rdp")
    text = text.replace("to_vm: win2003-2", "to_vm: ghost")
    with pytest.raises(SpecError) as info:
        parse_lab(text)
    paths = {i.path for i in info.value.issues}
    assert {"vms[1].nics[0].switch", "vms[2].guest.credential", "nat[0].forwards[0].to_vm"} <= paths


def test_yaml_syntax_error_has_line() -> None:
    """A YAML syntax error is a SpecError with the line, not a parser traceback."""
    with pytest.raises(SpecError) as info:
        parse_lab(BASE.replace("lab: classroom", "lab: [classroom"))
    (issue,) = info.value.issues
    assert "YAML syntax error" in issue.message
    assert issue.line is not None


def test_secret_value_never_echoed() -> None:
    """A literal password in the secret field is rejected without repeating it."""
    with pytest.raises(SpecError) as info:
        parse_lab(BASE.replace("secret: env:HVLAB_TELUSER_PASSWORD", "secret: Hunter2-Secret"))
    assert "Hunter2-Secret" not in str(info.value)


def test_missing_file_is_spec_error(tmp_path: Path) -> None:
    """A lab path that does not exist is reported as a SpecError."""
    with pytest.raises(SpecError, match="cannot read file"):
        load_lab(tmp_path / "nope.yaml")


def test_seed_lab_matches_the_classroom() -> None:
    """The example is the seed's lab: hosts, VMs, NAT forwards, share grants, replication."""
    spec = load_lab(SEED)
    assert [h.name for h in spec.hosts] == ["DC1", "SVR1", "SVR2"]
    assert spec.domain.fqdn == "kosa.vm" and spec.domain.dc == "DC1"
    assert spec.host("SVR1").connection.address == "192.168.1.110"
    for host in ("SVR1", "SVR2"):
        names = [s.name for s in spec.host(host).switches]
        assert names == ["External", "Internal", "Private", "Internal2"]
        assert spec.host(host).folders == ["C:\\Hyper-V", "C:\\Hyper-V\\VHDs"]
    router = spec.vm("win2003-1")
    assert (router.host, router.generation, router.memory) == ("SVR1", 1, 512 * 1024**2)
    assert [str(n.ipv4) for n in router.nics] == [
        "192.168.1.111/24", "10.10.10.1/24", "10.10.20.1/24"]
    assert {(f.external_port, f.to_vm) for f in spec.nat[0].forwards} == {
        (23, "win2003-2"), (35000, "win2003-3")}
    assert spec.vm_disk_path(spec.vm("win2003-3")).startswith("\\\\DC1\\smb\\")
    assert spec.vm("Linux01").host == "SVR2"
    assert {g.account for g in spec.shares[0].grants} >= {"KOSA\\SVR1$", "KOSA\\SVR2$"}
    rep = spec.replication[0]
    assert (rep.vm, rep.primary, rep.replica, rep.frequency) == ("Linux01", "SVR2", "SVR1", 300)
    assert rep.port != 80
    assert spec.reset is not None and spec.reset.checkpoint == "baseline"
    assert (spec.reset.cron, spec.reset.timezone) == ("0 6 * * 1-5", "Asia/Seoul")


def test_external_switch_keeps_the_host_vnic_unless_told_otherwise() -> None:
    """Like New-VMSwitch, an External switch keeps a host vNIC by default: with false the
    adapter's address (often the host's WinRM address) leaves the host."""
    text = BASE.replace("        allow_management_os: true\n", "", 1)
    assert text != BASE
    spec = parse_lab(text)
    assert spec.host("SVR1").switches[0].allow_management_os is True
    from activities.models import SwitchInput

    request = SwitchInput.from_spec("SVR1", spec.host("SVR1").switches[0])
    assert request.allow_management_os is True
