"""A local simulation of the processor's API (the OffBlocks sandbox), to test against."""

from adapters.sandbox.app import Sandbox, SandboxConfig
from adapters.sandbox.faults import Faults

__all__ = ["Faults", "Sandbox", "SandboxConfig"]
