"""Property: any valid lab round-trips through YAML unchanged."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvlab.spec import LabSpec
from hvlab.spec_check import check_lab
from hvlab.specfile import dump_lab, parse_lab
from hvlab.units import MB, format_size, parse_size

names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,11}", fullmatch=True)
memories = st.integers(min_value=16, max_value=4096).map(lambda n: n * 2 * MB)


@st.composite
def labs(draw: st.DrawFn) -> LabSpec:
    """Valid labs: a DC, 1-3 Hyper-V hosts with switches, VMs with addressed NICs, extras."""
    host_names = draw(st.lists(names, min_size=2, max_size=4, unique_by=str.lower))
    switch_names = draw(st.lists(names, min_size=1, max_size=3, unique_by=str.lower))
    subnets = [ipaddress.IPv4Network(f"10.{i + 1}.0.0/24") for i in range(len(switch_names))]
    switches: list[dict[str, Any]] = [
        {"name": n, "type": draw(st.sampled_from(["Internal", "Private"])), "subnet": str(s)}
        for n, s in zip(switch_names, subnets, strict=True)
    ]
    hosts: list[dict[str, Any]] = [
        {"name": host_names[0], "role": "dc", "join_domain": False,
         "connection": {"address": "192.168.0.10", "credential": "admin"}},
    ]
    for i, name in enumerate(host_names[1:]):
        hosts.append({
            "name": name, "role": "hyperv",
            "connection": {"address": f"192.168.0.{20 + i}", "credential": "admin",
                           "transport": draw(st.sampled_from(["https", "http"])),
                           "auth": draw(st.sampled_from(["kerberos", "ntlm"]))},
            "folders": ["C:\\Hyper-V"], "switches": switches,
            "memory": format_size(draw(memories) * 8),
        })
    vm_names = draw(st.lists(names, min_size=0, max_size=4, unique_by=str.lower))
    vms = []
    for v, vm_name in enumerate(vm_names):
        k = draw(st.integers(0, len(switches) - 1))
        vms.append({
            "name": vm_name, "host": draw(st.sampled_from(host_names[1:])), "generation": 2,
            "memory": draw(st.one_of(memories, memories.map(format_size))),
            "processors": draw(st.integers(1, 8)),
            "disk": {"golden": "golden", "mode": draw(st.sampled_from(["copy", "differencing"]))},
            "nics": [{"name": "nic0", "switch": switch_names[k],
                      "ipv4": f"{subnets[k].network_address + 10 + v}/24"}],
            "guest": {"os": draw(st.sampled_from(["windows", "linux"]))},
            "start": draw(st.booleans()),
        })
    data = {
        "lab": "lab-" + draw(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)),
        "domain": {"fqdn": "lab.test", "netbios": "LAB", "dc": host_names[0],
                   "admin_credential": "admin"},
        "credentials": {"admin": {"username": "LAB\\Administrator",
                                  "secret": draw(st.sampled_from(["env:PW", "file:/run/pw"]))}},
        "hosts": hosts,
        "golden_images": [{"name": "golden", "path": "C:\\Golden\\g.vhdx", "generation": 2}],
        "vms": vms,
        "checkpoints": [{"name": "baseline"}] if vms else [],
    }
    spec = LabSpec.model_validate(data)
    assert check_lab(spec) == [], check_lab(spec)
    return spec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labs())
def test_valid_lab_roundtrips_through_yaml(spec: LabSpec) -> None:
    """dump -> parse gives back an equal LabSpec, and dumping again gives the same text."""
    text = dump_lab(spec)
    again = parse_lab(text, "roundtrip.yaml")
    assert again == spec
    assert dump_lab(again) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_size_format_parse_inverse(size: int) -> None:
    """format_size is exact: parsing its output gives the same number of bytes."""
    assert parse_size(format_size(size)) == size
