"""The lab file's cross-reference rules (hvlab.spec_check): each rule reports its problem at
the right YAML path with the right words, and the valid variants just past each rule's boundary
are not reported. Cases are small edits of the seed lab's data, validated in-process."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from hvlab.spec import MIGRATION_SERVICE, LabSpec
from hvlab.spec_check import Loc, Problem, check_lab

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
# json round trip: plain dicts and lists, YAML anchors expanded into independent copies
SEED_DATA: dict[str, Any] = json.loads(json.dumps(YAML(typ="safe").load(SEED.read_text())))
# the variants here change hosts, VMs, NAT and checkpoints that the seed's exercise names; its
# steps' rules are tested in test_exercises.py
SEED_DATA.pop("exercises")

DELETE = object()
Edits = Mapping[Loc, Any]

NETNAT = {"name": "nn", "kind": "host-netnat", "host": "SVR1", "external": "Ethernet0",
          "internal": ["Internal"], "internal_prefix": "10.10.10.0/24"}
ALL_VMS = "(known: Linux01, win2003-1, win2003-2, win2003-3)"
ALL_HOSTS = "(known: DC1, SVR1, SVR2)"
BIOS = ("generation 1 VMs have BIOS firmware: Secure Boot settings apply to generation 2 only; "
        "remove this field")


def edited(edits: Edits) -> dict[str, Any]:
    """A copy of the seed data with each path set (an index one past the end appends)."""
    data = copy.deepcopy(SEED_DATA)
    for loc, value in edits.items():
        node: Any = data
        for part in loc[:-1]:
            node = node[part]
        last = loc[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)
    return data


def problems(edits: Edits) -> list[Problem]:
    return check_lab(LabSpec.model_validate(edited(edits)))


def messages_at(found: list[Problem], loc: Loc) -> list[str]:
    return [p.message for p in found if p.loc == loc]


# (id, edits, path of the problem, every message expected at that path, in order)
BROKEN: list[tuple[str, Edits, Loc, list[str]]] = [
    # duplicates (names compare case-insensitively; the message points at the first one)
    ("duplicate host", {("hosts", 3): {**SEED_DATA["hosts"][2], "name": "svr1",
                                       "connection": {"address": "192.168.1.121",
                                                      "credential": "domain-admin"}}},
     ("hosts", 3, "name"), ["duplicate host 'svr1' (first defined at hosts[1].name)"]),
    ("duplicate vm", {("vms", 2, "name"): "WIN2003-2"},
     ("vms", 2, "name"), ["duplicate VM 'WIN2003-2' (first defined at vms[1].name)"]),
    ("third of a name points at the first", {("vms", 2, "name"): "win2003-2",
                                              ("vms", 3, "name"): "win2003-2"},
     ("vms", 3, "name"), ["duplicate VM 'win2003-2' (first defined at vms[1].name)"]),
    ("duplicate golden image", {("golden_images", 2): {"name": "linux-golden", "path": "C:\\g",
                                                       "generation": 2}},
     ("golden_images", 2, "name"),
     ["duplicate golden image 'linux-golden' (first defined at golden_images[1].name)"]),
    ("duplicate share on the same host", {("shares", 1): {"host": "dc1", "name": "SMB",
                                                          "path": "C:\\x"}},
     ("shares", 1, "name"), ["duplicate share 'dc1\\\\SMB' (first defined at shares[0].name)"]),
    ("duplicate nat", {("nat", 1): {**SEED_DATA["nat"][0], "name": "Router"}},
     ("nat", 1, "name"), ["duplicate NAT 'Router' (first defined at nat[0].name)"]),
    ("duplicate checkpoint", {("checkpoints", 1): {"name": "Baseline"}},
     ("checkpoints", 1, "name"),
     ["duplicate checkpoint 'Baseline' (first defined at checkpoints[0].name)"]),
    ("duplicate switch", {("hosts", 1, "switches", 3, "name"): "internal"},
     ("hosts", 1, "switches", 3, "name"),
     ["duplicate switch on SVR1 'internal' (first defined at hosts[1].switches[1].name)"]),
    ("duplicate nic", {("vms", 0, "nics", 2, "name"): "EXTERNAL"},
     ("vms", 0, "nics", 2, "name"),
     ["duplicate NIC on win2003-1 'EXTERNAL' (first defined at vms[0].nics[0].name)"]),
    # domain
    ("unknown dc", {("domain", "dc"): "SVR9"}, ("domain", "dc"), [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("dc without role dc", {("domain", "dc"): "SVR1"}, ("domain", "dc"),
     ["host 'SVR1' must have role dc"]),
    ("unknown admin credential", {("domain", "admin_credential"): "nobody"},
     ("domain", "admin_credential"),
     ["unknown credential 'nobody' (known: domain-admin, guest-admin, local-admin, teluser)"]),
    ("no credentials at all", {("credentials",): {}}, ("domain", "admin_credential"),
     ["unknown credential 'domain-admin' (known: none defined)"]),
    # credentials referenced elsewhere
    ("unknown host credential", {("hosts", 2, "connection", "credential"): "nobody"},
     ("hosts", 2, "connection", "credential"),
     ["unknown credential 'nobody' (known: domain-admin, guest-admin, local-admin, teluser)"]),
    ("unknown guest credential", {("vms", 1, "guest", "credential"): "nobody"},
     ("vms", 1, "guest", "credential"),
     ["unknown credential 'nobody' (known: domain-admin, guest-admin, local-admin, teluser)"]),
    ("unknown telnet user credential",
     {("vms", 1, "guest", "telnet", "users", 1): {"name": "bob", "credential": "nobody"}},
     ("vms", 1, "guest", "telnet", "users", 1, "credential"),
     ["unknown credential 'nobody' (known: domain-admin, guest-admin, local-admin, teluser)"]),
    # hosts and switches
    ("dc with switches", {("hosts", 0, "switches"): [{"name": "LAN", "type": "Private"}]},
     ("hosts", 0, "role"), ["a dc host has no Hyper-V switches or migration"]),
    ("dc with migration", {("hosts", 0, "migration"): {}},
     ("hosts", 0, "role"), ["a dc host has no Hyper-V switches or migration"]),
    ("external switch without adapter", {("hosts", 1, "switches", 0, "adapter"): DELETE},
     ("hosts", 1, "switches", 0, "adapter"), ["an External switch needs the physical adapter"]),
    ("external switch with an empty adapter", {("hosts", 1, "switches", 0, "adapter"): ""},
     ("hosts", 1, "switches", 0, "adapter"), ["an External switch needs the physical adapter"]),
    ("internal switch with adapter", {("hosts", 2, "switches", 1, "adapter"): "Ethernet1"},
     ("hosts", 2, "switches", 1, "adapter"), ["a Internal switch takes no adapter"]),
    ("private switch with adapter", {("hosts", 1, "switches", 2, "adapter"): "Ethernet1"},
     ("hosts", 1, "switches", 2, "adapter"), ["a Private switch takes no adapter"]),
    ("overlapping subnets", {("hosts", 1, "switches", 3, "subnet"): "10.10.10.128/25"},
     ("hosts", 1, "switches", 3, "subnet"),
     ["10.10.10.128/25 overlaps 10.10.10.0/24 of switch 'Internal' on SVR1"]),
    # VMs
    ("vm on an unknown host", {("vms", 3, "host"): "SVR9"}, ("vms", 3, "host"),
     [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("vm on the dc", {("vms", 3, "host"): "DC1"}, ("vms", 3, "host"),
     ["DC1 is not a Hyper-V host (role dc)"]),
    ("nic on a host without switches", {("vms", 3, "host"): "DC1"}, ("vms", 3, "nics", 0, "switch"),
     ["switch 'External' is not defined on DC1 (defined: none)"]),
    ("unknown golden image", {("vms", 3, "disk", "golden"): "nope"}, ("vms", 3, "disk", "golden"),
     ["unknown golden image 'nope' (known: linux-golden, win2003-golden)"]),
    ("golden image of the other generation", {("vms", 3, "disk", "golden"): "win2003-golden"},
     ("vms", 3, "generation"),
     ["generation 2 does not match golden image 'win2003-golden' (generation 1)"]),
    ("unknown switch", {("vms", 1, "nics", 0, "switch"): "Nope"}, ("vms", 1, "nics", 0, "switch"),
     ["switch 'Nope' is not defined on SVR1 (defined: External, Internal, Private, Internal2)"]),
    ("telnet on linux", {("vms", 3, "guest", "telnet"): {"users": []}},
     ("vms", 3, "guest", "telnet"), ["the Telnet server role needs Windows"]),
    # firmware
    ("secure boot on generation 1", {("vms", 1, "secure_boot"): False}, ("vms", 1, "secure_boot"),
     [BIOS]),
    ("template on generation 1", {("vms", 1, "secure_boot_template"): "MicrosoftWindows"},
     ("vms", 1, "secure_boot_template"), [BIOS]),
    ("linux under the windows template", {("vms", 3, "secure_boot_template"): "MicrosoftWindows"},
     ("vms", 3, "secure_boot_template"),
     ["a linux guest does not boot with Secure Boot template MicrosoftWindows: Hyper-V halts it "
      "in firmware; use MicrosoftUEFICertificateAuthority or OpenSourceShieldedVM, or "
      "secure_boot: false"]),
    ("windows under the uefi ca template",
     {("vms", 3, "guest", "os"): "windows",
      ("vms", 3, "secure_boot_template"): "MicrosoftUEFICertificateAuthority"},
     ("vms", 3, "secure_boot_template"),
     ["a windows guest does not boot with Secure Boot template MicrosoftUEFICertificateAuthority:"
      " Hyper-V halts it in firmware; use MicrosoftWindows, or secure_boot: false"]),
    ("legacy windows by default is trusted only under the windows template",
     {("vms", 3, "guest", "os"): "windows-legacy",
      ("vms", 3, "secure_boot_template"): "OpenSourceShieldedVM"},
     ("vms", 3, "secure_boot_template"),
     ["a windows-legacy guest does not boot with Secure Boot template OpenSourceShieldedVM:"
      " Hyper-V halts it in firmware; use MicrosoftWindows, or secure_boot: false"]),
    # where guest addresses come from
    ("linux guest with static addresses", {("vms", 3, "guest", "address_source"): "static"},
     ("vms", 3, "guest", "address_source"),
     ["hvlab cannot set a Linux guest's addresses (PowerShell Direct does not reach Linux "
      "guests): use `golden` (the golden image configures them) or `dhcp`; hvlab then "
      "verifies each NIC's ipv4"]),
    ("windows guest with golden addresses", {("vms", 1, "guest", "address_source"): "golden"},
     ("vms", 1, "guest", "address_source"),
     ["hvlab configures the addresses of windows-legacy guests: remove address_source "
      "(golden and dhcp are for Linux guests)"]),
    # UNC paths
    ("unc path without a share", {("vms", 2, "path"): "\\\\DC1"}, ("vms", 2, "path"),
     [r"'\\\\DC1' is not a \\HOST\share path"]),
    ("unc path with an empty share", {("vms", 2, "path"): "\\\\DC1\\"}, ("vms", 2, "path"),
     [r"'\\\\DC1\\' is not a \\HOST\share path"]),
    ("unc disk on an undefined share", {("vms", 2, "disk", "path"): "\\\\DC1\\nosuch\\x.vhdx"},
     ("vms", 2, "disk", "path"), [r"share \\DC1\nosuch is not defined under shares"]),
    ("unc path on another host's share name", {("vms", 2, "path"): "\\\\SVR1\\smb"},
     ("vms", 2, "path"), [r"share \\SVR1\smb is not defined under shares"]),
    # addresses
    ("vm address of a host", {("vms", 3, "nics", 0, "ipv4"): "192.168.1.110/24"},
     ("vms", 3, "nics", 0, "ipv4"), ["192.168.1.110 is already used by SVR1"]),
    ("host addresses after a dns name still count",
     {("hosts", 0, "connection", "address"): "dc1.kosa.vm",
      ("vms", 3, "nics", 0, "ipv4"): "192.168.1.120/24"},
     ("vms", 3, "nics", 0, "ipv4"), ["192.168.1.120 is already used by SVR2"]),
    ("vm address of another vm", {("vms", 2, "nics", 0, "ipv4"): "10.10.20.1/24"},
     ("vms", 2, "nics", 0, "ipv4"), ["10.10.20.1 is already used by win2003-1/Internal2"]),
    ("address outside the switch subnet",
     {("vms", 1, "nics", 0, "ipv4"): "10.10.30.2/24", ("vms", 1, "nics", 0, "gateway"): "10.10.30.1"},
     ("vms", 1, "nics", 0, "ipv4"), ["10.10.30.2 is outside subnet 10.10.10.0/24 of switch 'Internal'"]),
    ("switch matched case-insensitively for its subnet",
     {("vms", 1, "nics", 0, "switch"): "internal", ("vms", 1, "nics", 0, "ipv4"): "10.10.30.2/24",
      ("vms", 1, "nics", 0, "gateway"): DELETE},
     ("vms", 1, "nics", 0, "ipv4"), ["10.10.30.2 is outside subnet 10.10.10.0/24 of switch 'internal'"]),
    ("gateway outside the nic network", {("vms", 0, "nics", 0, "gateway"): "192.168.9.2"},
     ("vms", 0, "nics", 0, "gateway"), ["gateway 192.168.9.2 is outside 192.168.1.0/24"]),
    ("network address", {("vms", 1, "nics", 0, "ipv4"): "10.10.10.0/24"},
     ("vms", 1, "nics", 0, "ipv4"), ["10.10.10.0/24 is a network or broadcast address"]),
    ("broadcast address", {("vms", 1, "nics", 0, "ipv4"): "10.10.10.255/24"},
     ("vms", 1, "nics", 0, "ipv4"), ["10.10.10.255/24 is a network or broadcast address"]),
    # NAT
    ("rras without a vm", {("nat", 0, "vm"): DELETE}, ("nat", 0, "vm"),
     ["rras-in-guest needs the router VM"]),
    ("rras on an unknown vm", {("nat", 0, "vm"): "ghost"}, ("nat", 0, "vm"),
     [f"unknown VM 'ghost' {ALL_VMS}"]),
    ("rras external nic missing", {("nat", 0, "external"): "Ext"}, ("nat", 0, "external"),
     ["win2003-1 has no NIC named 'Ext'"]),
    ("rras internal nic missing", {("nat", 0, "internal", 1): "Nope"}, ("nat", 0, "internal", 1),
     ["win2003-1 has no NIC named 'Nope'"]),
    ("netnat without a host", {("nat", 0): {k: v for k, v in NETNAT.items() if k != "host"}},
     ("nat", 0, "host"), ["host-netnat needs the Hyper-V host"]),
    ("netnat on an unknown host", {("nat", 0): {**NETNAT, "host": "SVR9"}}, ("nat", 0, "host"),
     [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("netnat without a prefix",
     {("nat", 0): {k: v for k, v in NETNAT.items() if k != "internal_prefix"}},
     ("nat", 0, "internal_prefix"), ["host-netnat needs the internal prefix"]),
    ("netnat without host or prefix",
     {("nat", 0): {k: v for k, v in NETNAT.items() if k not in ("host", "internal_prefix")}},
     ("nat", 0, "internal_prefix"), ["host-netnat needs the internal prefix"]),
    ("forward to a vm and an ip", {("nat", 0, "forwards", 1, "to_ip"): "10.10.20.2"},
     ("nat", 0, "forwards", 1), ["give exactly one of to_vm or to_ip"]),
    ("forward to nothing", {("nat", 0, "forwards", 1, "to_vm"): DELETE},
     ("nat", 0, "forwards", 1), ["give exactly one of to_vm or to_ip"]),
    ("forward to an unknown vm", {("nat", 0, "forwards", 1, "to_vm"): "ghost"},
     ("nat", 0, "forwards", 1, "to_vm"), [f"unknown VM 'ghost' {ALL_VMS}"]),
    ("duplicate port forward", {("nat", 0, "forwards", 1, "external_port"): 23},
     ("nat", 0, "forwards", 1, "external_port"),
     ["duplicate port forward 'tcp/23' (first defined at nat[0].forwards[0].external_port)"]),
    # shares
    ("share on an unknown host", {("shares", 0, "host"): "SVR9"}, ("shares", 0, "host"),
     [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("grant to a computer outside the lab", {("shares", 0, "grants", 1, "account"): "KOSA\\SVR9$"},
     ("shares", 0, "grants", 1, "account"),
     ["computer account 'KOSA\\\\SVR9$' is not a host of this lab"]),
    ("grant to a computer named after a host plus more",
     {("shares", 0, "grants", 1, "account"): "KOSA\\SVR1x\\y$"},
     ("shares", 0, "grants", 1, "account"),
     ["computer account 'KOSA\\\\SVR1x\\\\y$' is not a host of this lab"]),
    ("grant to a host's name under a nested path",
     {("shares", 0, "grants", 1, "account"): "KOSA\\X\\SVR1$"},
     ("shares", 0, "grants", 1, "account"),
     ["computer account 'KOSA\\\\X\\\\SVR1$' is not a host of this lab"]),
    # delegation
    ("delegation from an unknown host", {("delegation", 0, "host"): "SVR9"},
     ("delegation", 0, "host"), [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("delegation to an unknown host", {("delegation", 0, "to", 1, "target"): "SVR9"},
     ("delegation", 0, "to", 1, "target"), [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("unknown service", {("delegation", 1, "to", 0, "services"): ["cifs", "CIFS"]},
     ("delegation", 1, "to", 0, "services", 1),
     [f"unknown service 'CIFS'; use cifs or '{MIGRATION_SERVICE}'"]),
    # replication
    ("replica on an unknown host", {("replication", 0, "replica"): "SVR9"},
     ("replication", 0, "replica"), [f"unknown host 'SVR9' {ALL_HOSTS}"]),
    ("primary on an unknown host", {("replication", 0, "primary"): "SVR9"},
     ("replication", 0, "primary"),
     [f"unknown host 'SVR9' {ALL_HOSTS}", "Linux01 lives on SVR2, not SVR9"]),
    ("replica on the dc", {("replication", 0, "replica"): "DC1"}, ("replication", 0, "replica"),
     ["DC1 is not a Hyper-V host"]),
    ("primary on the dc", {("replication", 0, "primary"): "DC1"}, ("replication", 0, "primary"),
     ["DC1 is not a Hyper-V host", "Linux01 lives on SVR2, not DC1"]),
    ("replica is the primary", {("replication", 0, "replica"): "svr2"},
     ("replication", 0, "replica"), ["the replica must be another host than the primary"]),
    ("replication of an unknown vm", {("replication", 0, "vm"): "ghost"}, ("replication", 0, "vm"),
     [f"unknown VM 'ghost' {ALL_VMS}"]),
    ("primary is not where the vm lives",
     {("replication", 0, "primary"): "SVR1", ("replication", 0, "replica"): "SVR2"},
     ("replication", 0, "primary"), ["Linux01 lives on SVR2, not SVR1"]),
    ("second replication asks another port of a shared replica server",
     {("replication", 1): {"vm": "win2003-2", "primary": "SVR1", "replica": "SVR2",
                           "port": 80}},
     ("replication", 1, "port"),
     ["SVR1 and SVR2 each run one replica server for win2003-2 and Linux01 (replication[0], "
      "port 8080): use port 8080 here too, not 80"]),
    ("second replication asks another storage of a shared replica server",
     {("replication", 1): {"vm": "win2003-2", "primary": "SVR1", "replica": "SVR2",
                           "port": 8080, "storage": "D:\\Replica"}},
     ("replication", 1, "storage"),
     ["SVR1 and SVR2 each run one replica server for win2003-2 and Linux01 (replication[0], "
      "storage C:\\Hyper-V\\Replica): use storage C:\\Hyper-V\\Replica here too, not "
      "D:\\Replica"]),
    # bootstrap credentials: the local Administrator of a host that is not a DC
    ("unknown bootstrap credential", {("hosts", 1, "bootstrap_credential"): "svr1-admin"},
     ("hosts", 1, "bootstrap_credential"),
     ["unknown credential 'svr1-admin' (known: domain-admin, guest-admin, local-admin, "
      "teluser)"]),
    ("bootstrap credential on the dc", {("hosts", 0, "bootstrap_credential"): "local-admin"},
     ("hosts", 0, "bootstrap_credential"),
     ["a domain controller has no local accounts: remove bootstrap_credential (it is reached "
      "with connection.credential)"]),
    ("domain account as bootstrap credential",
     {("hosts", 2, "bootstrap_credential"): "domain-admin"}, ("hosts", 2, "bootstrap_credential"),
     ["credential 'domain-admin' is the domain account 'KOSA\\Administrator'; the bootstrap "
      "credential is the host's local Administrator (user name 'Administrator' or "
      "'.\\Administrator'), which works before the join"]),
    ("upn of the domain as bootstrap credential",
     {("credentials", "upn"): {"username": "administrator@KOSA.vm", "secret": "env:X"},
      ("hosts", 2, "bootstrap_credential"): "upn"}, ("hosts", 2, "bootstrap_credential"),
     ["credential 'upn' is the domain account 'administrator@KOSA.vm'; the bootstrap "
      "credential is the host's local Administrator (user name 'Administrator' or "
      "'.\\Administrator'), which works before the join"]),
    # checkpoints and reset
    ("checkpoint of an unknown vm", {("checkpoints", 0, "vms"): ["win2003-1", "ghost"]},
     ("checkpoints", 0, "vms", 1), [f"unknown VM 'ghost' {ALL_VMS}"]),
    ("checkpoint after an all checkpoint", {("checkpoints", 1): {"name": "b2", "vms": ["ghost"]}},
     ("checkpoints", 1, "vms", 0), [f"unknown VM 'ghost' {ALL_VMS}"]),
    ("reset to an unknown checkpoint", {("reset", "checkpoint"): "nightly"},
     ("reset", "checkpoint"), ["unknown checkpoint 'nightly' (known: baseline)"]),
    ("reset without checkpoints", {("checkpoints",): []}, ("reset", "checkpoint"),
     ["unknown checkpoint 'baseline' (known: none defined)"]),
]


@pytest.mark.parametrize(("edits", "loc", "expected"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_rule_reports_its_problem_at_its_path(edits: Edits, loc: Loc, expected: list[str]) -> None:
    """Each broken variant of the seed gets exactly the expected messages at the rule's path."""
    assert messages_at(problems(edits), loc) == expected


# (id, edits): variants on the valid side of each rule's boundary
VALID: list[tuple[str, Edits]] = [
    ("the seed", {}),
    ("dc named in another case", {("domain", "dc"): "dc1"}),
    ("share of the same name on another host", {("shares", 1): {"host": "SVR1", "name": "smb",
                                                               "path": "C:\\smb"}}),
    ("vm host in another case", {("vms", 1, "host"): "svr1"}),
    ("second replication with the shared replica server's settings",
     {("replication", 1): {"vm": "win2003-2", "primary": "SVR1", "replica": "SVR2",
                           "port": 8080, "storage": "c:\\hyper-v\\replica\\"}}),
    ("names equal only under upper-casing are distinct, as LabSpec.vm looks them up",
     {("vms", 4): {**SEED_DATA["vms"][3], "name": "Straße", "nics": []},
      ("vms", 5): {**SEED_DATA["vms"][3], "name": "STRASSE", "nics": []}}),
    ("nic switch in another case", {("vms", 1, "nics", 0, "switch"): "internal"}),
    ("nic on a switch without a subnet",
     {("vms", 1, "nics", 1): {"name": "P", "switch": "Private", "ipv4": "172.16.0.5/24"}}),
    ("nic without an address", {("vms", 1, "nics", 1): {"name": "P", "switch": "Private"}}),
    ("last host address of a subnet", {("vms", 1, "nics", 0, "ipv4"): "10.10.10.254/24"}),
    ("gateway of another switch's subnet is fine if inside the nic network",
     {("vms", 1, "nics", 0, "ipv4"): "10.10.10.2/16", ("vms", 1, "nics", 0, "gateway"): "10.10.20.9"}),
    ("switches without subnets do not overlap",
     {("hosts", 1, "switches", 3, "subnet"): DELETE, ("hosts", 1, "switches", 1, "subnet"): DELETE,
      ("vms", 0, "nics", 2, "ipv4"): DELETE, ("vms", 2, "nics", 0, "ipv4"): DELETE,
      ("vms", 2, "nics", 0, "gateway"): DELETE}),
    ("linux with secure boot off under the windows template",
     {("vms", 3, "secure_boot"): False, ("vms", 3, "secure_boot_template"): "MicrosoftWindows"}),
    ("linux under the open source template",
     {("vms", 3, "secure_boot_template"): "OpenSourceShieldedVM"}),
    ("linux under the uefi ca template",
     {("vms", 3, "secure_boot_template"): "MicrosoftUEFICertificateAuthority"}),
    ("generation 2 windows by default", {("vms", 3, "guest", "os"): "windows",
                                          ("vms", 3, "guest", "address_source"): DELETE}),
    ("generation 2 windows under the windows template",
     {("vms", 3, "guest", "os"): "windows", ("vms", 3, "secure_boot"): True,
      ("vms", 3, "guest", "address_source"): DELETE,
      ("vms", 3, "secure_boot_template"): "MicrosoftWindows"}),
    ("windows with secure boot off under the uefi ca template",
     {("vms", 3, "guest", "os"): "windows-legacy", ("vms", 3, "secure_boot"): False,
      ("vms", 3, "guest", "address_source"): DELETE,
      ("vms", 3, "secure_boot_template"): "MicrosoftUEFICertificateAuthority"}),
    ("linux addresses from dhcp", {("vms", 3, "guest", "address_source"): "dhcp"}),
    ("linux addresses from the golden image by default", {("vms", 3, "guest", "address_source"): DELETE}),
    ("unc paths in another case", {("vms", 2, "path"): "\\\\dc1\\SMB\\vms",
                                   ("vms", 2, "disk", "path"): "\\\\Dc1\\Smb\\x.vhdx"}),
    ("local paths are not shares", {("vms", 2, "path"): "D:\\VMs",
                                    ("vms", 2, "disk", "path"): "\\DC1\\nosuch\\x.vhdx"}),
    ("nat vm and nics in another case", {("nat", 0, "vm"): "WIN2003-1",
                                         ("nat", 0, "external"): "external",
                                         ("nat", 0, "internal"): ["INTERNAL", "internal2"]}),
    ("netnat", {("nat", 0): NETNAT}),
    ("netnat host in another case", {("nat", 0): {**NETNAT, "host": "svr1"}}),
    ("forward to an ip", {("nat", 0, "forwards", 1, "to_vm"): DELETE,
                          ("nat", 0, "forwards", 1, "to_ip"): "10.10.20.2"}),
    ("forward to a vm in another case", {("nat", 0, "forwards", 0, "to_vm"): "WIN2003-2"}),
    ("same port over another protocol", {("nat", 0, "forwards", 1, "external_port"): 23,
                                         ("nat", 0, "forwards", 1, "protocol"): "udp"}),
    ("grants that are not computers of another domain",
     {("shares", 0, "grants"): [{"account": a} for a in
                                ("kosa\\svr1$", "dc1$", "SVR9$", "KOSA\\Admins", "KOSA\\SVR9",
                                 "OTHER\\DC1$")]}),
    ("share host in another case", {("shares", 0, "host"): "dc1"}),
    ("every supported service, hosts in another case",
     {("delegation", 0, "host"): "svr1", ("delegation", 0, "to", 0, "target"): "svr2",
      ("delegation", 0, "to", 0, "services"): ["cifs", MIGRATION_SERVICE, "HOST", "http"]}),
    ("replication names in another case",
     {("replication", 0, "vm"): "linux01", ("replication", 0, "primary"): "svr2",
      ("replication", 0, "replica"): "Svr1"}),
    ("checkpoint vms in another case", {("checkpoints", 0, "vms"): ["WIN2003-1", "linux01"]}),
    ("no reset and no checkpoints", {("checkpoints",): [], ("reset",): DELETE}),
    ("no bootstrap credentials", {("hosts", 1, "bootstrap_credential"): DELETE,
                                  ("hosts", 2, "bootstrap_credential"): DELETE}),
    ("bootstrap credential named by host or dot",
     {("credentials", "svr1-admin"): {"username": "SVR1\\Administrator", "secret": "env:X"},
      ("credentials", "dot-admin"): {"username": ".\\Administrator", "secret": "env:Y"},
      ("hosts", 1, "bootstrap_credential"): "svr1-admin",
      ("hosts", 2, "bootstrap_credential"): "dot-admin"}),
]


@pytest.mark.parametrize("edits", [v[1] for v in VALID], ids=[v[0] for v in VALID])
def test_valid_variant_has_no_problem(edits: Edits) -> None:
    """A variant on the valid side of every rule's boundary is reported with no problem."""
    assert problems(edits) == []


def test_overlap_is_reported_once_on_the_later_switch() -> None:
    """Two overlapping switch subnets give one problem, on the later switch only."""
    found = problems({("hosts", 2, "switches", 3, "subnet"): "10.10.0.0/16"})
    overlaps = [p for p in found if "overlaps" in p.message]
    assert overlaps == [Problem(("hosts", 2, "switches", 3, "subnet"),
                                "10.10.0.0/16 overlaps 10.10.10.0/24 of switch 'Internal' on SVR2")]


def test_both_bios_fields_on_generation_1_are_reported() -> None:
    """A generation 1 VM with both Secure Boot fields gets one problem for each field."""
    found = problems({("vms", 0, "secure_boot"): True,
                      ("vms", 0, "secure_boot_template"): "MicrosoftWindows"})
    assert [p.loc for p in found] == [("vms", 0, "secure_boot"), ("vms", 0, "secure_boot_template")]


def test_malformed_unc_path_is_one_problem() -> None:
    """A UNC path without a share name is reported as malformed, not also as an unknown share."""
    found = problems({("vms", 2, "path"): "\\\\DC1\\", ("vms", 2, "disk", "path"): "\\\\DC1"})
    assert [p.loc for p in found] == [("vms", 2, "path"), ("vms", 2, "disk", "path")]


def test_vm_on_unknown_host_gets_no_switch_or_subnet_problems() -> None:
    """A VM whose host is unknown is reported once, not again for its NICs' switches or subnets."""
    found = problems({("vms", 3, "host"): "SVR9", ("replication",): []})
    assert found == [Problem(("vms", 3, "host"), f"unknown host 'SVR9' {ALL_HOSTS}")]


def test_netnat_without_host_or_prefix_reports_both() -> None:
    """A host-netnat gateway missing both its host and its prefix gets both problems."""
    nat = {k: v for k, v in NETNAT.items() if k not in ("host", "internal_prefix")}
    found = problems({("nat", 0): nat})
    assert [p.loc for p in found] == [("nat", 0, "host"), ("nat", 0, "internal_prefix")]


def test_problems_come_in_rule_order_and_are_values() -> None:
    """check_lab lists problems rule by rule, and equal problems compare and hash equal."""
    found = problems({("vms", 2, "name"): "win2003-2", ("domain", "dc"): "SVR9",
                      ("reset", "checkpoint"): "nightly"})
    assert [p.loc for p in found][:2] == [("vms", 2, "name"), ("domain", "dc")]
    assert found[-1].loc == ("reset", "checkpoint")
    assert len(set(found + problems({("vms", 2, "name"): "win2003-2"}))) == len(set(found))
