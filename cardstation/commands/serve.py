"""`cardstation serve`: the station's gRPC server.

  cardstation serve [--config F] [--listen HOST:PORT]
  cardstation serve --simulate [--listen 127.0.0.1:PORT] [--speed F] [--blank-cards N]
                    [--printers N]

With --simulate every device is a simulator in this process (pcscd started if needed) and
credential-less callers on loopback act as the built-in admin, so a client can make a card at
once; it only listens on loopback. Otherwise TLS is required on any non-loopback address and
callers authenticate by token or client certificate. SIGTERM/SIGINT finish or park the step in
progress (never half a chip write), then stop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from cardstation import crash_hook


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the station's gRPC server")
    parser.add_argument("--config", help="cardstation.toml (default: ./cardstation.toml)")
    parser.add_argument("--listen", help="HOST:PORT (default: [server] listen)")
    parser.add_argument("--simulate", action="store_true",
                        help="every device simulated in this process (loopback only)")
    parser.add_argument("--speed", type=float, default=0.05,
                        help="simulated printer time scale (1 = real, 0 = instant)")
    parser.add_argument("--blank-cards", type=int, default=20,
                        help="blank cards loaded into each simulated printer")
    parser.add_argument("--printers", type=int, default=1,
                        help="simulated printers (lanes), 1 to 3; each has its own encoder")
    parser.add_argument("--folder", default="var/simulated",
                        help="where the simulated station keeps its files")
    parser.set_defaults(func=run)


def _client_roles(text: str) -> dict[str, str]:
    roles: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, role = part.partition("=")
        if not sep:
            raise ValueError(f"[server] client_roles entry {part!r} is not NAME=role")
        roles[name.strip()] = role.strip()
    return roles


class RunningServer:
    """A started server with its runtime; `stop()` parks the job and shuts both down."""

    def __init__(self, server: Any, port: int, runtime: Any, stack: ExitStack,
                 simulated: Any = None) -> None:
        self.server, self.port, self.runtime, self._stack = server, port, runtime, stack
        self.simulated = simulated  # the SimulatedStation behind --simulate, else None
        self.metrics_port = 0  # /metrics's port when served

    def stop(self, grace: float = 5.0) -> None:
        """Park the job in progress, end the watch streams, stop the server, then the
        runtime and simulators."""
        self.runtime.park()
        self.runtime.begin_shutdown()
        self.server.stop(grace).wait()
        self._stack.close()  # runtime.stop, then the simulators (LIFO)


@contextmanager
def open_audit_log(config: Any) -> Iterator[Any]:
    """The audit log under its key (created on first start), its head kept in the journal."""
    from cardstation.personalization.journal import Journal
    from cardstation.personalization.private_files import make_private_dir
    from cardstation.server.audit import AuditLog
    from cardstation.server.audit_head import JournalHeadStore
    from cardstation.server.audit_key import load_or_create_key

    make_private_dir(config.data_path)  # before the head store may create the journal there
    audit_path = config.server.audit_log or str(config.data_path / "audit.jsonl")
    key = load_or_create_key(config.server.audit_key or config.data_path / "audit.key")
    with Journal(config.data_path / "journal.sqlite") as journal, \
            AuditLog(audit_path, key=key, head=JournalHeadStore(journal)) as audit:
        yield audit


def start_server(config: Any, listen: str, simulate: bool = False, speed: float = 0.05,
                 blank_cards: int = 20, folder: str = "var/simulated",
                 metrics_listen: str = "", printers: int = 1) -> RunningServer:
    """Start everything; used by `serve`, `demo` and the tests. `metrics_listen` host:port
    serves /metrics for Prometheus there ("" = not at all; `serve` gives the configured one)."""
    from cardstation.retention import PurgeTimer
    from cardstation.server.auth import AuthInterceptor, TokenStore
    from cardstation.server.runtime import StationRuntime
    from cardstation.server.serve import build_server
    from cardstation.server.tls import (
        check_listen_security,
        check_private_key,
        server_credentials,
    )
    from cardstation.station import build_station

    tls = bool(config.server.tls_cert)
    check_listen_security(listen, tls, simulate)
    if tls:  # before any device or journal is touched: a key others can read is refused
        check_private_key(config.server.tls_key)
    stack = ExitStack()
    sim = None
    psam_seen: Any = None  # --simulate: waits until pcscd sees the simulated PSAM's card
    try:
        if simulate:
            from cardstation.drivers.pcsc.readers import PcscContext
            from cardstation.pcscd import ensure_running
            from cardstation.simulated import station_config
            from cardstation.simulators.station import ENCODER_READERS, SimulatedStation

            ensure_running()
            with PcscContext() as pcsc:
                encoders = ENCODER_READERS[:max(1, printers)]
                missing = [r for r in encoders if r not in pcsc.readers()]
                if missing:
                    raise ValueError(f"--printers {printers}: no PC/SC reader {missing[0]!r} "
                                     "for the simulated encoder; `make setup` installs the "
                                     "vpcd entry that gives it (simulators/vpcd/lanes.conf), "
                                     "then pcscd must be restarted")
                for reader in (*encoders, config.readers.psam):
                    pcsc.wait_for_removal(reader, timeout=10)
                sim = stack.enter_context(SimulatedStation(Path(folder), speed=speed,
                                                           printers=printers))
                for index in range(len(sim.printers)):
                    sim.load_blank(blank_cards, printer=index)

            def psam_seen(reader: str = config.readers.psam) -> None:
                # pcscd looks at vpcd's slots every 400 ms: the station is built meanwhile
                with PcscContext() as pcsc:
                    pcsc.wait_for_card(reader, timeout=10)

            config = station_config(sim, server=vars(config.server),
                                window={"pin_timeout": config.window.pin_timeout},
                                station={"min_free_mb": config.station.min_free_mb})
        # The audit log first: a cut or foreign log refuses the start before any job resumes.
        audit = stack.enter_context(open_audit_log(config))
        # crash drills only: a kill at a journal commit, when the environment asks for it
        kill_hook = crash_hook.from_environment()
        # the runtime audits its automatic rules (restart recovery among them) in the same log
        runtime = StationRuntime(lambda **kw: build_station(config, after_commit=kill_hook, **kw),
                                 audit=audit)
        if psam_seen is not None:
            try:
                psam_seen()  # before any job resumes: a resumed job may need the key service
            except BaseException:
                runtime.station.close()  # built, never started
                raise
        runtime.start()
        stack.callback(runtime.stop)
        # personal data of long-finished jobs, once a day (cardstation.retention)
        stack.enter_context(PurgeTimer(config.data_path / "journal.sqlite",
                                       config.station.personal_data_days))
        tokens = TokenStore.load(config.server.tokens_file) if config.server.tokens_file \
            else None
        interceptor = AuthInterceptor(tokens, _client_roles(config.server.client_roles),
                                      audit, simulate_loopback=simulate)
        credentials = None
        if tls:
            credentials = server_credentials(config.server.tls_cert, config.server.tls_key,
                                             config.server.client_ca or None)
        server, port = build_server(runtime, listen, credentials, [interceptor],
                                    max_streams=config.server.max_streams)
        running = RunningServer(server, port, runtime, stack, sim)
        if metrics_listen:
            running.metrics_port = _serve_metrics(runtime, metrics_listen, config, stack)
        server.start()
        return running
    except BaseException:
        stack.close()
        raise


def _serve_metrics(runtime: Any, listen: str, config: Any, stack: ExitStack) -> int:
    """/metrics on `listen` (TLS with the server's certificate off loopback); its port."""
    from prometheus_client import start_http_server

    from cardstation.server.metrics import StationMetrics
    from cardstation.server.tls import check_listen_security, split_host_port

    tls = bool(config.server.tls_cert)
    check_listen_security(listen, tls, simulate=False)
    host, port = split_host_port(listen)
    metrics = StationMetrics(runtime)
    try:
        http, thread = start_http_server(
            int(port), host.strip("[]"), registry=metrics.registry,
            certfile=config.server.tls_cert or None, keyfile=config.server.tls_key or None)
    except OSError as exc:
        raise OSError(f"[server] metrics_listen {listen}: cannot listen ({exc.strerror}) — "
                      "stop what uses that port, or change metrics_listen (\"\" turns /metrics "
                      "off)") from None
    stack.callback(lambda: (http.shutdown(), http.server_close(), thread.join(5)))
    return int(http.server_port)


def run(args: argparse.Namespace) -> int:
    from cardstation import config as config_module
    from cardstation.personalization.journal import JournalError
    from cardstation.server.tls import InsecureListenError
    from cardstation.station import journal_refusal

    try:
        cfg = config_module.load(args.config)
        listen = args.listen or cfg.server.listen
        if args.printers != 1 and not args.simulate:
            raise ValueError("--printers is for --simulate; a station's printers are its "
                             "[[printers]] in cardstation.toml")
        running = start_server(cfg, listen, args.simulate, args.speed, args.blank_cards,
                               args.folder, metrics_listen=cfg.server.metrics_listen,
                               printers=args.printers)
    except JournalError as exc:  # refused before serving: never over a damaged journal
        print(f"serve: {journal_refusal(exc)}", file=sys.stderr)
        return 2
    except (config_module.ConfigError, InsecureListenError, ValueError, OSError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    from cardstation.simulators.foreground import catch_stop_signals, wait_for_stop_signal

    stop = catch_stop_signals()  # before the address: a caller may signal as soon as it reads it
    host = listen.rpartition(":")[0] or "127.0.0.1"
    print(f"listening on {host}:{running.port}", flush=True)
    wait_for_stop_signal(stop)
    print("stopping: finishing the step in progress", flush=True)
    running.stop()
    return 0
