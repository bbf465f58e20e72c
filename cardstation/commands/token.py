"""`cardstation token create --name window-1 --role operator [--expires 30d] [--file F]`: a new
bearer token, its hash added to the token file (made 0600) and the token printed once, on
stdout, for whoever logs in with it; `token list` shows the entries (names, roles, expiry:
never a token); `token revoke --name N` removes a name's tokens."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

DEFAULT_FILE = "/etc/cardstation/tokens.json"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float | None:
    """"30d", "12h", "90m", "never" -> seconds (None: no expiry)."""
    if text.strip().lower() == "never":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text.lower())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a number and s, m, h or d (30d), or never")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64 or any(c.isspace() or not c.isprintable() for c in name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a name: give who uses the token, 1-64 characters without spaces "
            "(window-1, console-02, hub)")
    return name


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("token", help="make, list and revoke login tokens")
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION")
    create = actions.add_parser("create", help="make a token and print it once")
    create.add_argument("--name", required=True, type=_name,
                        help="who uses it (window-1, console-02, hub)")
    create.add_argument("--role", required=True, choices=["operator", "upstream", "admin"])
    create.add_argument("--expires", type=duration, default=duration("30d"),
                        help="lifetime: 30d (default), 12h, or never")
    listing = actions.add_parser("list", help="the token file's entries (no tokens)")
    revoke = actions.add_parser("revoke", help="remove every token of a name")
    revoke.add_argument("--name", required=True)
    for sub in (create, listing, revoke):
        sub.add_argument("--file", default=DEFAULT_FILE,
                         help=f"token file ([server] tokens_file; default {DEFAULT_FILE})")
    create.set_defaults(func=run_create)
    listing.set_defaults(func=run_list)
    revoke.set_defaults(func=run_revoke)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)


def _store(path: Path):  # -> TokenStore
    from cardstation.server.auth import TokenStore

    return TokenStore.load(path) if path.exists() else TokenStore()


def run_create(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        store = _store(path)
        token, entry = store.issue(args.name, args.role, args.expires)
        path.parent.mkdir(parents=True, exist_ok=True)
        store.save(path)
        _give_to_service_user(path)
    except (OSError, ValueError) as exc:
        print(f"token create: {exc}", file=sys.stderr)
        return 1
    until = "never expires" if entry.expires_at is None else \
        "expires " + time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.expires_at))
    print(token)
    print(f"token for {args.name} ({args.role}) added to {path}; {until}. It is shown only "
          "this once: give it to its user now. A running server reads the file at start: "
          "restart it.", file=sys.stderr)
    return 0


def _give_to_service_user(path: Path) -> None:
    """Run as root on an installed station: the file belongs to the service's own user (it
    stays 0600), so the server it was made for can read it."""
    import os
    import pwd

    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("cardstation")
    except KeyError:
        return  # not an installed station (no service user)
    os.chown(path, user.pw_uid, user.pw_gid)


def run_list(args: argparse.Namespace) -> int:
    if not Path(args.file).exists():
        print(f"token list: there is no token file at {args.file} — give the station's "
              "[server] tokens_file with --file, or make one with `cardstation token create`",
              file=sys.stderr)
        return 1
    try:
        store = _store(Path(args.file))
    except ValueError as exc:
        print(f"token list: {exc}", file=sys.stderr)
        return 1
    now = time.time()
    for e in store.entries:
        expiry = "never" if e.expires_at is None else time.strftime(
            "%Y-%m-%d %H:%M", time.localtime(e.expires_at))
        state = "expired" if e.expires_at is not None and e.expires_at <= now else "valid"
        print(f"{e.name}\t{e.role.value}\t{expiry}\t{state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from cardstation.server.auth import TokenStore

    path = Path(args.file)
    try:
        store = _store(path)
        kept = [e for e in store.entries if e.name != args.name]
        if len(kept) == len(store.entries):
            print(f"token revoke: no token of {args.name!r} in {path}", file=sys.stderr)
            return 1
        TokenStore(kept).save(path)
    except (OSError, ValueError) as exc:
        print(f"token revoke: {exc}", file=sys.stderr)
        return 1
    print(f"removed {len(store.entries) - len(kept)} token(s) of {args.name} from {path}; "
          "restart the server for it to take effect", file=sys.stderr)
    return 0
