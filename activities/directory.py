"""Active Directory activities: Kerberos constrained delegation on a host's computer object
(msDS-AllowedToDelegateTo, "use any authentication protocol"), the machine ticket purge that
makes it effective, and the compensation that removes exactly what the delegation step added.

The AD cmdlets run on the domain controller (``dc``); the purge runs on the host itself. The
``*_command`` / ``*_script`` functions build the exact commands the activities emit.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.base import Remote, application_errors, not_found, verify_failed
from activities.models import (
    DelegationInput,
    HostInput,
    RemoveDelegationInput,
    StepResult,
)
from hvlab.powershell.command import Command, Script
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool

DELEGATE_TO = "msDS-AllowedToDelegateTo"
TRANSITION = "TrustedToAuthForDelegation"


# -- commands ------------------------------------------------------------------------------


def get_computer_command(computer: str) -> Command:
    return Command.of("Get-ADComputer", Identity=computer, Properties=[DELEGATE_TO, TRANSITION])


def add_delegation_command(computer: str, spns: list[str]) -> Command:
    return Command.of("Set-ADComputer", Identity=computer, Add={DELEGATE_TO: list(spns)})


def remove_delegation_command(computer: str, spns: list[str]) -> Command:
    return Command.of("Set-ADComputer", Identity=computer, Remove={DELEGATE_TO: list(spns)})


def account_name(computer: str) -> str:
    """The computer's SAM account name (``SVR1$``): Set-ADAccountControl's ``ADAccount``
    identity is a DN, GUID, SID or SAM account name, never the bare computer name."""
    return computer if computer.endswith("$") else computer + "$"


def account_control_command(computer: str, trusted: bool) -> Command:
    return Command.of("Set-ADAccountControl", Identity=account_name(computer),
                      TrustedToAuthForDelegation=trusted)


def purge_tickets_script() -> Script:
    return Script(name="host/purge-tickets")


# -- helpers -------------------------------------------------------------------------------


def delegation_view(computer: dict[str, Any]) -> dict[str, Any]:
    raw = computer.get(DELEGATE_TO) or []
    spns = [str(s) for s in (raw if isinstance(raw, list) else [raw])]
    return {"allowed_to_delegate_to": spns,
            "trusted_to_auth_for_delegation": computer.get(TRANSITION) is True}


def _present(view: dict[str, Any]) -> set[str]:
    return {s.lower() for s in view["allowed_to_delegate_to"]}


class DirectoryActivities:
    """Delegation steps on the domain controller and ticket purges on hosts."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _view(self, dc: str, computer: str) -> dict[str, Any]:
        found = self._remote.query_one(dc, get_computer_command(computer))
        if found is None:
            raise not_found(dc, f"computer {computer}")
        return delegation_view(found)

    # -- delegation ----------------------------------------------------------------------
    @activity.defn(name="directory.delegation")
    def delegation(self, request: DelegationInput) -> StepResult:
        """Add the missing msDS-AllowedToDelegateTo entries (Set-ADComputer -Add) and turn on
        protocol transition when asked and off; ``added`` and ``transition_set`` say what
        this run changed (the compensation removes exactly that)."""
        with application_errors():
            return self._delegation(request)

    def _delegation(self, request: DelegationInput) -> StepResult:
        before = self._view(request.dc, request.computer)
        have = _present(before)
        missing = list(dict.fromkeys(s for s in request.spns if s.lower() not in have))
        if missing:
            self._remote.run(request.dc, add_delegation_command(request.computer, missing))
        transition = request.protocol_transition and not before[
            "trusted_to_auth_for_delegation"]
        if transition:
            self._remote.run(request.dc, account_control_command(request.computer, True))
        after = self._view(request.dc, request.computer)
        lacking = [s for s in request.spns if s.lower() not in _present(after)]
        if lacking or (request.protocol_transition and not after[
                "trusted_to_auth_for_delegation"]):
            raise verify_failed(request.dc, f"{request.computer} delegation is incomplete",
                                {"missing": lacking, **after})
        return StepResult(changed=bool(missing) or transition, observed={
            "computer": request.computer, "added": missing, "transition_set": transition,
            **after})

    # -- ticket purge --------------------------------------------------------------------
    @activity.defn(name="directory.purge_tickets")
    def purge_tickets(self, request: HostInput) -> StepResult:
        """klist purge -li 0x3e7 on the host, so changed delegation applies without a reboot.
        There is nothing to probe: it always runs (harmless) and reports ``changed``."""
        with application_errors():
            output = self._remote.script(request.host, purge_tickets_script())
            return StepResult(changed=True, observed={"purged": True,
                                                      "output": [str(o) for o in output]})

    # -- compensation --------------------------------------------------------------------
    @activity.defn(name="directory.remove_delegation")
    def remove_delegation(self, request: RemoveDelegationInput) -> StepResult:
        """Compensation of directory.delegation: remove the entries it added that are still
        there, and turn protocol transition off if it turned it on; a computer object that
        is gone counts as done."""
        with application_errors():
            try:
                before = self._view(request.dc, request.computer)
            except RemoteError as error:
                if error.type_name != "NotFound":
                    raise
                return StepResult(changed=False, observed={"absent": True})
            return self._remove(request, before)

    def _remove(self, request: RemoveDelegationInput, before: dict[str, Any]) -> StepResult:
        have = _present(before)
        remove = list(dict.fromkeys(s for s in request.spns if s.lower() in have))
        if remove:
            self._remote.run(request.dc, remove_delegation_command(request.computer, remove))
        restore = request.restore_transition and before["trusted_to_auth_for_delegation"]
        if restore:
            self._remote.run(request.dc, account_control_command(request.computer, False))
        after = self._view(request.dc, request.computer)
        left = [s for s in request.spns if s.lower() in _present(after)]
        if left or (request.restore_transition and after["trusted_to_auth_for_delegation"]):
            raise verify_failed(request.dc, f"{request.computer} delegation remains",
                                {"left": left, **after})
        return StepResult(changed=bool(remove) or restore, observed={
            "computer": request.computer, "removed": remove, "transition_restored": restore,
            **after})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.delegation, self.purge_tickets, self.remove_delegation]
