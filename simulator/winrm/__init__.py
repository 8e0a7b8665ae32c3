"""Simulated WinRM/PowerShell Remoting listener (see :mod:`simulator.winrm.server`)."""

from simulator.winrm.faults import FaultEffect, FaultHooks, FaultRule, RequestInfo
from simulator.winrm.server import WinRMServer

__all__ = ["FaultEffect", "FaultHooks", "FaultRule", "RequestInfo", "WinRMServer"]
