"""What the test modules share, one module a concern; test modules import from here (and get
fixtures from conftest.py, which loads the modules of this package that define fixtures as
pytest plugins), never from one another.

- pcsc: the vpcd readers' names and ports, a card slot, restarting pcscd
- world: the pipeline tests' simulated station
- served, window, console: `serve --simulate` for the API, window and browser tests
- auth_harness: a gRPC server of fake servicers behind an interceptor, and calls to it
- applicants, journal, clock: sample applications, journal states, a clock the test moves
- card_os, fakecards: APDUs to the simulated card OS, scripted cards for the drivers
- hiti: the HiTi printer simulator rigs (fixtures); face: card-face helpers; certs: a test PKI
- toy_printer: a second printer model, in this process
"""
