"""`cardstation backup --to DIR [--prune] [--config F]`: a verified backup of the journal, the
audit log and its key (see cardstation.backup); `--prune` also deletes the previews past
`[station] preview_retention_days` (cardstation.retention), and alone does only that.
`cardstation backup --verify DIR` checks an existing backup. Prints one JSON object; exit 0
done, 1 failed (the message says why and what to do), 2 usage or missing input."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backup", help="back up the journal and audit log "
                                   "(verified); prune old previews")
    parser.add_argument("--to", help="folder the backup is made in (a new subfolder each time)")
    parser.add_argument("--prune", action="store_true",
                        help="delete previews of finished cards past preview_retention_days")
    parser.add_argument("--verify", metavar="BACKUP", help="check an existing backup folder")
    add_config(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.to or args.prune or args.verify):
        emit({"ok": False, "message": "give --to DIR (make a backup), --prune, or --verify DIR"})
        return 2
    return run_guarded(args, lambda config: _run(args, config))


def _run(args: argparse.Namespace, config: Config) -> int:
    from cardstation.backup import make_backup, verify_backup
    from cardstation.retention import prune_previews

    out: dict[str, Any] = {"ok": True}
    if args.verify:
        report = verify_backup(Path(args.verify))
        out.update(ok=report.ok, backup=str(report.folder), problems=report.problems,
                   message="the backup verifies" if report.ok else
                   "the backup is damaged or incomplete: do not restore from it; make a new one")
        emit(out)
        return 0 if report.ok else 1
    if args.to:
        report = make_backup(config, Path(args.to))
        manifest = report.manifest
        out.update(backup=str(report.folder), counts=manifest["counts"],
                   pending_returns=len(manifest["pending_returns"]),
                   audit=manifest.get("audit"),
                   message="backup written and verified (integrity, row counts, audit chain, "
                   "checksums)")
    if args.prune:
        pruned = prune_previews(config.data_path, config.station.preview_retention_days)
        out["previews"] = asdict(pruned) | {
            "retention_days": config.station.preview_retention_days}
    emit(out)
    return 0
