"""host.dns points the host's adapter at the DC, which the domain join needs."""

from __future__ import annotations

from activities.host import HostActivities
from activities.models import DnsInput, DomainJoinInput
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.activities.conftest import mutations


def test_dns_then_join(fleet: Fleet, lab_spec: LabSpec, host_activities: HostActivities) -> None:
    """DNS is set once (rerun sends nothing) and then Add-Computer succeeds."""
    request = DnsInput.from_spec(lab_spec, "SVR1")
    first = host_activities.dns(request)
    assert first.changed and first.observed["interface"] == "Ethernet0"
    assert first.observed["dns"][0] == lab_spec.host("DC1").connection.address
    before = mutations(fleet, "SVR1")
    again = host_activities.dns(request)
    assert not again.changed and mutations(fleet, "SVR1") == before
    joined = host_activities.domain_join(DomainJoinInput.from_spec(lab_spec, "SVR1"))
    assert joined.changed and joined.observed["restart_needed"] is True


def test_join_without_dns_fails_with_host_message(
    lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """Without DNS at the DC the join fails, non-retryable, with the host's text."""
    import pytest
    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as info:
        host_activities.domain_join(DomainJoinInput.from_spec(lab_spec, "SVR2"))
    assert info.value.non_retryable
    assert "could not be contacted" in str(info.value) or "domain" in str(info.value).lower()
