"""Fault injection: a TCP proxy that misbehaves, and a harness that kills host and device."""

from sentinel.chaos.proxy import FaultProxy, Faults, ProxyCounts

__all__ = ["FaultProxy", "Faults", "ProxyCounts"]
