"""What a native program's model reads and writes (:class:`NativeRun`), apart from the
dispatch in :mod:`simulator.native` so the program modules do not import their package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.core import SimState
    from simulator.world import Host, World


class NotModelled(Exception):
    """The program exists on Windows, but this form of it is not simulated."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class NativeRun:
    """One run of a native program: what it reads and the lines and exit code it produces."""

    sim: SimState
    host: Host
    program: str  # canonical, lower-case, without ".exe"
    args: list[str]
    session: str = ""
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # both streams, in the order written

    @property
    def world(self) -> World:
        return self.sim.world

    def now(self) -> float:
        return self.sim.clock.now()

    def out(self, *lines: str) -> None:
        self.stdout.extend(lines)
        self.lines.extend(lines)

    def err(self, *lines: str) -> None:
        self.stderr.extend(lines)
        self.lines.extend(lines)


Program = Callable[[NativeRun], int]
