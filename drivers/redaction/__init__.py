"""Masking of personal data and secrets in logs and traces, at the bottom of the lowest layer.

Importable by every layer (the other drivers, personalization, server, simulators, the
composition root) because it imports nothing of ours and does nothing on import: no handler,
no record factory, no logger configuration. Installing the masking on the logging framework
is the command line's job (cardstation.logs, called by cardstation.cli).

Two nets, in this order:
1. structure: the code that knows what a field is masks it where it logs it (the APDU trace
   masks the data of personal records and of PIN and key commands with :func:`masked`; call
   sites log :func:`mask_id_number` forms);
2. patterns: :func:`redact` masks whatever still looks like an ID number, an account number
   or a long run of digits (also hex-encoded), applied to every record by the CLI's logging.
"""

from .patterns import mask_account, mask_id_number, redact
from .records import RedactingFormatter, RedactingLogRecord
from .tags import masked, tag

__all__ = [
    "RedactingFormatter",
    "RedactingLogRecord",
    "mask_account",
    "mask_id_number",
    "masked",
    "redact",
    "tag",
]
