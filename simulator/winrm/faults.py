"""Fault injection for the simulated WinRM listener.

A :class:`FaultHooks` holds :class:`FaultRule` objects (and/or a callback). Every authenticated
WS-Man request is described by a :class:`RequestInfo` and matched against the rules; the first
rule that fires decides what happens to that request:

* ``drop``: the TCP connection is closed without an answer (the client sees a connection error);
* ``http500``: the request is answered with HTTP 500 (a WSManFault, or plain text when
  ``fault_code`` is None);
* ``delay``: the answer is held back ``delay`` seconds, then the request is processed normally.

``drop`` and ``http500`` apply before the request is processed (a pipeline it would have created
never starts) unless ``after_processing`` is set, in which case the server executes the request
and only the answer is lost — the "did my New-VM run?" case.

Whole-host outages (refused connections, reboot) are ``WinRMServer.go_down()``/``come_up()``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.winrm.soap import INTERNAL_ERROR


class FaultEffect(enum.Enum):
    """What an injected fault does to the request it fires on."""

    DROP = "drop"
    HTTP_500 = "http500"
    DELAY = "delay"


@dataclass(frozen=True)
class RequestInfo:
    """One authenticated WS-Man request as fault rules and callbacks see it.

    ``commands`` lists the command names of pipelines this request completes (the Command or
    final Send of a CreatePipeline), e.g. ``("New-VM",)``; it is empty for other requests.
    """

    host: str
    action: str
    username: str
    shell_id: str | None = None
    command_id: str | None = None
    commands: tuple[str, ...] = ()


@dataclass
class FaultRule:
    """Fire ``effect`` on the ``nth`` (1-based) request matching ``action`` and ``command``.

    ``action`` is a short WS-Man action name (``Create``, ``Command``, ``Send``, ``Receive``,
    ``Signal``, ``Delete``, ``Get``); ``command`` a command name in the pipeline the request
    creates (case-insensitive). None matches anything. The rule fires for ``count`` consecutive
    matches from the ``nth`` on (0: for ever).
    """

    effect: FaultEffect
    action: str | None = None
    command: str | None = None
    nth: int = 1
    count: int = 1
    delay: float = 0.0
    after_processing: bool = False
    fault_code: int | None = INTERNAL_ERROR
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def matches(self, info: RequestInfo) -> bool:
        """True when the request is of the rule's action and names its command."""
        if self.action is not None and self.action.lower() != info.action.lower():
            return False
        if self.command is None:
            return True
        return self.command.lower() in (c.lower() for c in info.commands)

    def consider(self, info: RequestInfo) -> bool:
        """Count a matching request; True when the rule fires on it."""
        if not self.matches(info):
            return False
        self.matched += 1
        if self.matched < self.nth:
            return False
        if self.count and self.matched >= self.nth + self.count:
            return False
        self.fired += 1
        return True


FaultCallback = Callable[[RequestInfo], FaultRule | None]


@dataclass
class FaultHooks:
    """Rules and an optional callback; the callback sees every request and may return a rule
    to apply to it right away (its nth/count are then ignored)."""

    rules: list[FaultRule] = field(default_factory=list)
    callback: FaultCallback | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add(self, rule: FaultRule) -> FaultRule:
        """Append a rule (thread-safe) and return it, e.g. to read ``fired`` later."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules.clear()

    @property
    def inspects_commands(self) -> bool:
        """True when decisions may depend on ``RequestInfo.commands``.

        Only then must the server decode a pipeline before answering its Command request.
        """
        with self._lock:
            return self.callback is not None or any(r.command for r in self.rules)

    def decide(self, info: RequestInfo) -> FaultRule | None:
        """The fault to apply to this request, if any."""
        if self.callback is not None:
            rule = self.callback(info)
            if rule is not None:
                return rule
        with self._lock:
            fired = None
            for rule in self.rules:
                if rule.consider(info) and fired is None:
                    fired = rule
            return fired
