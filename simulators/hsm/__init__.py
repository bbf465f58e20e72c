"""Simulator of the remote encryption machine (HSM) on loopback, speaking the proposed wire
format of `personalization/keys/hsm_wire.py` over TLS with the TEST-ONLY keys of
`personalization/keys/scheme.py`."""

from .pki import HsmPki, make_pki
from .server import HsmSimulator

__all__ = ["HsmPki", "HsmSimulator", "make_pki"]
