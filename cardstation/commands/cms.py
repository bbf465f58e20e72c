"""`cardstation cms conformance`: run the CMS conformance kit against an adapter and a CMS.

  cms conformance --kind KIND --url URL --station ID --ready ID --ready2 ID --not-marked ID
                  --unknown ID [--option KEY=VALUE ...] [--temporary-card CODE ...]
  cms conformance --simulate       the reference adapter against a CMS simulator it starts
  cms conformance --list           the checks, in the order they run

The adapter is made the way the station makes it: `[cms] kind` looked up in
cardstation/registries.py, called with CmsSettings (`--config` reads `[station] id` and `[cms]`
from a cardstation.toml; the options here override it). Prints one line per check (PASS, FAIL
or SKIP, its name and message), then one JSON summary line. ID numbers are always masked.
Exit codes: 0 no check failed, 1 a check failed, 2 usage (missing or invalid arguments, an
adapter that cannot be made). What each check means: docs/cms-adapter.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cardstation.personalization.ports.cms_conformance import ConformanceBed

ROLES = ("ready", "ready2", "not_marked", "unknown")
TEMPORARY_ARGS = ("temporary_card", "temporary_card2", "temporary_holder",
                  "temporary_holder_name", "temporary_unknown")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cms", help="the CMS adapter: conformance kit")
    actions = parser.add_subparsers(dest="cms_command", metavar="ACTION", required=True)
    kit = actions.add_parser("conformance", help="run the conformance kit against a CMS "
                             "adapter and a test CMS (docs/cms-adapter.md)")
    where = kit.add_argument_group("the adapter and the CMS under test")
    where.add_argument("--config", help="cardstation.toml to take [station] id and [cms] from")
    where.add_argument("--kind", help="[cms] kind (cardstation/registries.py; default "
                       "reference-http)")
    where.add_argument("--url", help="the test CMS's address ([cms] url)")
    where.add_argument("--station", help="station id the claims are made in ([station] id)")
    where.add_argument("--other-station", default="", help="a second station id, for the "
                       "claims from another station (default: STATION-conformance)")
    where.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="an adapter option ([cms.options]); VALUE is read as TOML "
                       "(1, true, \"text\") or else as text; repeatable")
    where.add_argument("--connect-timeout", type=float, help="[cms] connect_timeout (s)")
    where.add_argument("--read-timeout", type=float, help="[cms] read_timeout (s)")
    where.add_argument("--unreachable-url", help="an address where no CMS answers (default: "
                       "a closed port on 127.0.0.1)")
    people = kit.add_argument_group("test applicants in the CMS (the checks change them)")
    people.add_argument("--ready", help="ID number: marked for instant issuance, fee "
                        "registered, not claimed")
    people.add_argument("--ready2", help="ID number: a second one like --ready")
    people.add_argument("--not-marked", help="ID number: without the instant-issuance mark")
    people.add_argument("--unknown", help="ID number the CMS has no application for")
    temp = kit.add_argument_group("temporary cards (all five, or none: the checks are skipped)")
    temp.add_argument("--temporary-card", metavar="CODE", help="a card identification code "
                      "the CMS has no issued record of")
    temp.add_argument("--temporary-card2", metavar="CODE", help="a second one")
    temp.add_argument("--temporary-holder", metavar="ID", help="a holder with no temporary "
                      "card out")
    temp.add_argument("--temporary-holder-name", metavar="NAME", help="the holder's name")
    temp.add_argument("--temporary-unknown", metavar="CODE", help="a code the CMS does not "
                      "know")
    kit.add_argument("--public-key", metavar="HEX", help="a card signing public key (65 bytes, "
                     "hex) for the certificate (GetCA) check; without it the check is skipped")
    kit.add_argument("--different-acks", action="store_true", help="the CMS acknowledges a "
                     "repeated return with a new acknowledgement (documented by the adapter)")
    kit.add_argument("--simulate", action="store_true", help="start a CMS simulator and use "
                     "its sample applicants (no CMS needed)")
    kit.add_argument("--seed", type=int, default=0, help="--simulate: the simulator's seed")
    kit.add_argument("--list", action="store_true", help="list the checks and exit")
    kit.set_defaults(func=run_conformance)


class UsageError(Exception):
    pass


def run_conformance(args: argparse.Namespace) -> int:
    from cardstation.logs import redact
    from cardstation.personalization.ports.cms_conformance import CHECKS, run_checks, summarize

    if args.list:
        for check in CHECKS:
            print(f"{check.name:22} {check.summary}")
        return 0
    try:
        with _bed(args) as (bed, about):
            print(f"cms conformance: {redact(about)}", file=sys.stderr, flush=True)
            results = run_checks(bed, lambda r: print(
                f"{r.status.upper():4}  {r.name:22} {redact(r.message)}", flush=True))
    except UsageError as exc:
        print(f"cms conformance: {redact(str(exc))}", file=sys.stderr)
        return 2
    summary = summarize(results)
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 0 if summary["ok"] else 1


@contextmanager
def _bed(args: argparse.Namespace) -> Iterator[tuple[ConformanceBed, str]]:
    """The ConformanceBed the arguments describe (with --simulate: a simulator running for the
    duration), and a one-line description of it."""
    if not args.simulate:
        yield _make_bed(args, {})
        return
    from cardstation.simulators.cms.conformance import conformance_applicants
    from cardstation.simulators.cms.server import CmsSimulator

    if args.url:
        raise UsageError("--simulate starts its own CMS: leave out --url — or run without "
                         "--simulate against your CMS")
    with CmsSimulator(seed=args.seed) as sim:
        url = sim.start()
        people = conformance_applicants(sim)
        yield _make_bed(args, {"url": url, "ready": people.ready, "ready2": people.ready2,
                               "not_marked": people.not_marked, "unknown": people.unknown,
                               "temporary": people.temporary,
                               "card_life": people.card_life,
                               "certificate_public_key": people.certificate_public_key})


def _make_bed(args: argparse.Namespace, simulated: dict[str, Any]) -> tuple[ConformanceBed, str]:
    from cardstation.config import Config, ConfigError, load
    from cardstation.personalization.ports.cms import CmsSettings
    from cardstation.personalization.ports.cms_conformance import (
        ConformanceBed,
        TemporaryCardBed,
    )
    from cardstation.registries import UnknownAdapter, cms_factory

    try:
        config = load(args.config) if args.config else None
    except ConfigError as exc:
        raise UsageError(f"{exc} — correct the file or leave out --config") from None
    kind = args.kind or (config.cms.kind if config else "reference-http")
    url = simulated.get("url") or args.url or (config.cms.url if config else None)
    station = args.station or (config.station.id if config else None)
    if simulated and not station:
        station = Config().station.id  # the simulated station's default id
    if not url or not station:
        raise UsageError("no CMS address or station id — give --url and --station (or "
                         "--config with a cardstation.toml, or --simulate)")
    options = dict(config.cms.options) if config else {}
    options.update(_options(args.option))
    timeouts = {
        "connect_timeout": args.connect_timeout or (config.cms.connect_timeout if config
                                                    else 3.0),
        "read_timeout": args.read_timeout or (config.cms.read_timeout if config else 10.0),
    }
    try:
        factory = cms_factory(kind)
    except (UnknownAdapter, ImportError, AttributeError) as exc:
        raise UsageError(f"{exc} — give a kind listed in cardstation/registries.py "
                         "(CMS_KINDS)") from None
    dead = args.unreachable_url or _closed_address()

    def adapter_for(address: str) -> Callable[[str], Any]:
        def make(station_id: str) -> Any:
            return factory(CmsSettings(address, station_id, options=options, **timeouts))
        return make

    try:
        adapter_for(url)(station)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"the {kind} adapter cannot be made: {exc} — check --url and "
                         "--option") from None
    ids: dict[str, str] = {role: getattr(args, role) or simulated.get(role) or ""
                           for role in ROLES}
    missing = ["--" + role.replace("_", "-") for role, value in ids.items() if not value]
    if missing:
        raise UsageError("the kit needs four test applicants in the CMS — give "
                         + " ".join(missing) + " (docs/cms-adapter.md says which)")
    try:
        bed = ConformanceBed(
            factory=adapter_for(url), station=station, other_station=args.other_station,
            unreachable=adapter_for(dead), same_ack=not args.different_acks,
            temporary=_temporary(args, TemporaryCardBed) or simulated.get("temporary"),
            card_life=simulated.get("card_life"),
            certificate_public_key=_public_key(args.public_key)
            or simulated.get("certificate_public_key"), **ids)
    except ValueError as exc:
        raise UsageError(f"{exc} — check the ID numbers given") from None
    source = "a CMS simulator" if simulated else "the CMS"
    return bed, f"kind {kind}, {source} at {url}, station {station}; ready {ids['ready']}, " \
        f"ready2 {ids['ready2']}, not marked {ids['not_marked']}, unknown {ids['unknown']}"


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--option {pair!r} is not KEY=VALUE — e.g. --option timeout=5")
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # plain text need not be quoted
        options[key.strip()] = value
    return options


def _temporary(args: argparse.Namespace, bed_type: Any) -> Any:
    values = {name: getattr(args, name) for name in TEMPORARY_ARGS}
    given = [name for name, value in values.items() if value]
    if not given:
        return None
    if len(given) != len(values):
        missing = [f"--{n.replace('_', '-')}" for n in TEMPORARY_ARGS if n not in given]
        raise UsageError(f"the temporary-card checks need all five options; missing "
                         f"{' '.join(missing)} — or give none to skip them")
    return bed_type(card_id_code=values["temporary_card"],
                    second_card_id_code=values["temporary_card2"],
                    holder_id=values["temporary_holder"],
                    holder_name=values["temporary_holder_name"],
                    unknown_card_id_code=values["temporary_unknown"])


def _public_key(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError("--public-key is not hex — give the 65-byte key as hex") from None


def _closed_address() -> str:
    """http://127.0.0.1:PORT where nothing listens: a port the system just gave and took back
    (connecting to it is refused at once, as for a CMS that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
