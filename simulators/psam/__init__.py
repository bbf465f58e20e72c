"""Simulated PSAM (terminal security module): BFDE diversification, 80FA encryption/MAC, terminal
number in EF 0016. Uses the shared, self-consistent (not the ministry's) key scheme."""

from .psam import PSAM_AID, TERMINAL_EF_FID, Psam

__all__ = ["PSAM_AID", "TERMINAL_EF_FID", "Psam"]
