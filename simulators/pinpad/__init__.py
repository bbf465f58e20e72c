"""Simulated PIN pad on a pty (pad side of the cardstation PIN pad protocol)."""

from cardstation.simulators.pinpad.simulator import FAULTS, PinPadSimulator, PromptInfo, parse_keys

__all__ = ["FAULTS", "PinPadSimulator", "PromptInfo", "parse_keys"]
