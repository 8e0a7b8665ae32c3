"""Korean hosts (simulator/localization.py): a host of the lab file with ``locale: ko-KR``
words its errors, warnings, job errors and built-in display names in Korean, through real
pypsrp, while error ids, categories, HRESULTs, rule Names and property names stay as they are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlab.spec import LabSpec
from simulator import localization
from simulator.cmdlets.hyperv_vm import NO_MEMORY
from simulator.fleet import Fleet
from tests.sim.conftest import PS, hyperv_ready, props

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def korean(spec: LabSpec) -> LabSpec:
    """The lab with every host ``locale: ko-KR``."""
    hosts = [h.model_copy(update={"locale": "ko-KR"}) for h in spec.hosts]
    return spec.model_copy(update={"hosts": hosts})


@pytest.fixture
def ko_fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(korean(lab_spec), tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as running:
        yield running


def connect(fleet: Fleet, host: str) -> PS:
    endpoints = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]
    return PS(endpoints[host])


def test_lab_file_locale_is_validated() -> None:
    """``locale`` takes the locales the fleet knows; anything else is a spec error."""
    from pydantic import ValidationError

    from hvlab.spec import Host

    base = {"name": "SVR1", "role": "hyperv", "connection": {"address": "192.168.1.110",
                                                             "credential": "x"}}
    assert Host.model_validate(base).locale == "en-US"
    assert Host.model_validate({**base, "locale": "ko-KR"}).locale == "ko-KR"
    with pytest.raises(ValidationError, match="locale"):
        Host.model_validate({**base, "locale": "kr"})


def test_korean_host_answers_in_korean_with_unchanged_ids(ko_fleet: Fleet) -> None:
    """Get-VM of a VM that is not there, a command that does not exist, and Get-Service of a
    missing service: the messages are Korean (and carry no English sentence), the
    FullyQualifiedErrorIds, categories and exception types are those of an en-US host."""
    hyperv_ready(ko_fleet.sim, "SVR1")
    ps = connect(ko_fleet, "SVR1")
    try:
        missing = ps.run("Get-VM", Name="nope")
        record = missing.streams.error[0]
        assert str(record) == 'Hyper-V에서 이름이 "nope"인 가상 컴퓨터를 찾을 수 없습니다.'
        assert record.fq_error == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
        assert record.category == 5  # InvalidArgument
        service = ps.run("Get-Service", Name="nosuchsvc")
        record = service.streams.error[0]
        assert HANGUL.search(str(record)) and "Cannot find" not in str(record)
        assert record.fq_error.startswith("NoServiceFoundForGivenName,")
        assert record.category == 13  # ObjectNotFound
    finally:
        ps.close()


def test_korean_host_names_builtin_rules_in_korean_but_keeps_their_names(
    ko_fleet: Fleet,
) -> None:
    """The Hyper-V Replica HTTP listener rule shows its Korean DisplayName (as on a Korean
    Windows Server) and keeps its Name; the English DisplayName finds nothing there."""
    hyperv_ready(ko_fleet.sim, "SVR1")
    ps = connect(ko_fleet, "SVR1")
    try:
        by_name = ps.run("Get-NetFirewallRule", Name="VIRT-HVRHTTPL-In-TCP-NoScope")
        rule = props(by_name.output_objects[0])
        assert rule["Name"] == "VIRT-HVRHTTPL-In-TCP-NoScope"
        assert rule["DisplayName"] == "Hyper-V 복제본 HTTP 수신기(TCP-In)"
        by_english = ps.run("Get-NetFirewallRule",
                            DisplayName="Hyper-V Replica HTTP Listener (TCP-In)")
        assert by_english.output_objects == [] and by_english.streams.error
        assert by_english.streams.error[0].fq_error.startswith("CmdletizationQuery_NotFound")
    finally:
        ps.close()


def test_korean_warnings(ko_fleet: Fleet) -> None:
    """A warning (Test-NetConnection's failed TCP connect) is Korean too."""
    ps = connect(ko_fleet, "SVR1")
    try:
        tested = ps.run("Test-NetConnection", ComputerName="192.168.1.100", Port=9)
        warnings = [str(w.message) for w in tested.streams.warning]
        assert warnings and all(HANGUL.search(w) for w in warnings), warnings
        assert all("failed" not in w for w in warnings)
    finally:
        ps.close()


def test_english_host_is_unchanged(lab_spec: LabSpec, tmp_path: Path) -> None:
    """en-US (the default) answers exactly as before."""
    with Fleet(lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as fleet:
        hyperv_ready(fleet.sim, "SVR1")
        ps = connect(fleet, "SVR1")
        try:
            missing = ps.run("Get-VM", Name="nope")
            assert str(missing.streams.error[0]) == (
                'Hyper-V was unable to find a virtual machine with name "nope".')
            rule = props(ps.run("Get-NetFirewallRule",
                                Name="VIRT-HVRHTTPL-In-TCP-NoScope").output_objects[0])
            assert rule["DisplayName"] == "Hyper-V Replica HTTP Listener (TCP-In)"
        finally:
            ps.close()


def test_unknown_messages_become_marked_approximations_keeping_identifiers() -> None:
    """A message no template knows loses its English words on a Korean host, keeps its
    identifiers (HRESULT, quoted names) and is marked as an approximation; known templates
    nest (a reason inside a message is itself localized); en-US and Korean text pass through;
    the simulator's own 'not simulated' stays."""
    odd = "Something odd happened to 'vm1' (0x80070057)."
    ko = localization.localize("ko-KR", odd)
    assert ko.startswith(localization.UNCONFIRMED) and "'vm1'" in ko and "0x80070057" in ko
    assert "Something" not in ko
    nested = localization.localize(
        "ko-KR", "'SVR2' failed to register the configuration for the virtual machine 'Linux01' "
        "at '\\\\DC1\\smb\\x': General access denied error (0x80070005). (Virtual machine ID X)")
    assert "일반적인 액세스 거부 오류입니다(0x80070005)." in nested and "General" not in nested
    assert localization.localize("en-US", odd) == odd
    assert localization.localize("ko-KR", ko) == ko
    assert localization.localize("ko-KR", "not simulated: Foo") == "not simulated: Foo"
    with pytest.raises(ValueError):
        localization.check("kr")


def test_every_line_of_a_multi_line_message_is_korean() -> None:
    """A multi-line message (Start-VM without memory: six lines, each its own template) is
    localized line by line; a one-line template never matches the whole text by letting a
    placeholder run across lines, which left five of the six lines English."""
    text = NO_MEMORY.format(vm="Linux01", id="ID-1", mb=6144)
    ko = localization.localize("ko-KR", text)
    lines = ko.split("\n")
    assert len(lines) == 6 and all(re.search("[\uac00-\ud7a3]", line) for line in lines), ko
    assert "Not enough" not in ko and "could not" not in ko and "failed" not in ko
    assert "6144MB" in ko and ko.count("ID-1") == 3
