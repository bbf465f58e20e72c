"""cardstation: the software of a social-security-card instant-issuance station."""

from cardstation._version import __version__

__all__ = ["__version__"]
