"""The station software's version: the one place it is written (pyproject.toml reads it), so
`cardstation --version` needs no package-metadata lookup (importlib.metadata costs more than
the rest of the command line's start)."""

__version__ = "0.1.0"
