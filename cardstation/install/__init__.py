"""Putting the station on a PC: the files `cardstation install` lays down and the offline bundle.

templates/ holds every file written (package data); files.py renders and writes them,
idempotently, into / or a staging root; system.py is what only a live install does (users,
systemctl, udevadm); bundle.py builds the offline archive of `make bundle`.
"""
