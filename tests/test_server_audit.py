"""The hash-chained audit log, its verifier, the CLI, and the interceptor's audit records."""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cardstation.commands import audit as audit_command
from cardstation.personalization.journal import Journal
from cardstation.protos.cardstation.v1 import issuance_pb2
from cardstation.server.audit import (
    FIELDS,
    GENESIS,
    AuditChainError,
    AuditHead,
    AuditLog,
    key_id,
    record_mac,
    verify,
)
from cardstation.server.audit_head import JournalHeadStore, read_head
from cardstation.server.audit_key import AuditKeyError, load_or_create_key, read_key
from cardstation.server.auth.identity import Role
from cardstation.server.auth.interceptor import AuthInterceptor
from cardstation.server.auth.policy import STATE_CHANGING
from cardstation.server.auth.tokens import TokenStore
from cardstation.server.errors import error_info
from tests.support.applicants import ID_NUMBER
from tests.support.auth_harness import Harness, all_methods, call

M = "/cardstation.v1.IssuanceService/"
S = "/cardstation.v1.StationService/"
KEY = bytes(range(32))
OTHER_KEY = b"\x55" * 32


class MemoryHead:
    """A head store in memory (the journal's is tested below)."""

    def __init__(self) -> None:
        self.head: AuditHead | None = None

    def load(self) -> AuditHead | None:
        return self.head

    def save(self, head: AuditHead) -> None:
        self.head = head


def fill(path: Path, n: int = 5, heads: MemoryHead | None = None) -> list[dict[str, Any]]:
    with AuditLog(path, key=KEY, head=heads) as log:
        return [log.append(f"who{i}", "operator", M + "CreateIssuance", f"iss-{i}", "OK")
                for i in range(n)]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def check(path: Path, heads: MemoryHead | None = None) -> Any:
    """verify() with the head when one is given, else without comparing the head."""
    if heads is None:
        return verify(path, KEY, check_head=False)
    return verify(path, KEY, heads.head)


def forge(record: dict[str, Any], key: bytes) -> str:
    """A line as someone with `key` (not the server's) would write it."""
    record = dict(record)
    record["mac"] = record_mac(record, key)
    return json.dumps(record) + "\n"


# --- the file ---------------------------------------------------------------------------------


def test_chain_is_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    heads = MemoryHead()
    records = fill(path, 3, heads)
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev"] == GENESIS
    assert records[1]["prev"] == records[0]["mac"]
    parsed = [json.loads(line) for line in lines(path)]
    assert parsed == records
    for r in parsed:
        assert set(r) == set(FIELDS)
        assert r["mac"] == record_mac(r, KEY)
        assert r["kid"] == key_id(KEY)
    assert heads.head == AuditHead(3, records[-1]["mac"])
    result = check(path, heads)
    assert (result.ok, result.records, result.first_bad_line) == (True, 3, None)
    assert result.head_seq == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_file_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    AuditLog(path, key=KEY, head=heads).close()
    assert check(path, heads).ok and check(path, heads).records == 0


@pytest.mark.parametrize(("field", "value"), [
    ("who", "someone-else"), ("result", "PERMISSION_DENIED"), ("issuance_id", "iss-99"),
    ("at", "2000-01-01T00:00:00.000Z"), ("seq", 33),
])
def test_edited_field_is_found_on_its_line(tmp_path: Path, field: str, value: Any) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    content = lines(path)
    record = json.loads(content[2])
    record[field] = value
    content[2] = json.dumps(record) + "\n"
    path.write_text("".join(content), encoding="utf-8")
    result = check(path)
    assert not result.ok
    assert (result.first_bad_line, result.records, result.problem) == (3, 2, "bad_mac")


def test_rewritten_line_with_recomputed_chain_fails(tmp_path: Path) -> None:
    # The fault of issue 17: with an unkeyed sha256 chain, rewriting line 2 and recomputing
    # every later line passed. Without the server's key the recomputed MACs cannot match.
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    fill(path, 4, heads)
    content = [json.loads(line) for line in lines(path)]
    content[1]["who"] = "mallory"
    prev = content[0]["mac"]
    forged = []
    for record in content[1:]:
        record["prev"] = prev
        line = forge(record, OTHER_KEY)
        prev = json.loads(line)["mac"]
        forged.append(line)
    path.write_text(lines(path)[0] + "".join(forged), encoding="utf-8")
    result = check(path, heads)
    assert (result.ok, result.first_bad_line, result.seq, result.problem) == \
        (False, 2, 2, "bad_mac")
    assert "bad MAC" in result.message


def test_line_under_another_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    record = json.loads(lines(path)[1])
    record["kid"] = key_id(OTHER_KEY)
    path.write_text(lines(path)[0] + forge(record, OTHER_KEY), encoding="utf-8")
    result = check(path)
    assert (result.first_bad_line, result.problem) == (2, "other_key")
    assert key_id(OTHER_KEY) in result.message


def test_deleted_middle_line_is_a_sequence_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    fill(path, 5, heads)
    content = lines(path)
    del content[2]
    path.write_text("".join(content), encoding="utf-8")
    result = check(path, heads)
    assert (result.ok, result.first_bad_line, result.seq, result.problem) == \
        (False, 3, 4, "sequence_gap")
    assert "gap in sequence" in result.message and "deleted" in result.message


def test_deleted_first_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    path.write_text("".join(lines(path)[1:]), encoding="utf-8")
    result = check(path)
    assert (result.first_bad_line, result.problem) == (1, "sequence_gap")


def test_reordered_lines_are_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    path.write_text("".join(content), encoding="utf-8")
    assert check(path).first_bad_line == 3


def test_line_from_another_chain_is_a_chain_break(tmp_path: Path) -> None:
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    fill(first, 3)
    with AuditLog(second, key=KEY) as log:  # same key, same seqs, other content
        for i in range(3):
            log.append("other", "admin", S + "ResetPrinter", None, f"R{i}")
    content = lines(first)
    content[1] = lines(second)[1]
    first.write_text("".join(content), encoding="utf-8")
    result = check(first)
    assert (result.first_bad_line, result.problem) == (2, "chain_break")


def test_truncated_tail_fails_against_the_head(tmp_path: Path) -> None:
    # The other fault of issue 17: cutting whole lines off the end passed `verify`.
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    fill(path, 5, heads)
    path.write_text("".join(lines(path)[:3]), encoding="utf-8")
    result = check(path, heads)
    assert (result.ok, result.problem, result.first_bad_line, result.seq, result.head_seq) == \
        (False, "truncated_tail", 4, 4, 5)
    assert "2 record(s) missing" in result.message
    with pytest.raises(AuditChainError, match="cut off"):
        AuditLog(path, key=KEY, head=heads)


def test_emptied_file_fails_against_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    fill(path, 2, heads)
    path.write_bytes(b"")
    assert check(path, heads).problem == "truncated_tail"
    path.unlink()
    with pytest.raises(AuditChainError, match="head at seq 2"):
        AuditLog(path, key=KEY, head=heads)


def test_file_one_line_ahead_of_the_head_is_reported_not_failed(tmp_path: Path) -> None:
    # A crash between the fsync of the line and the head's commit.
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    records = fill(path, 3, heads)
    heads.head = AuditHead(2, records[1]["mac"])
    result = check(path, heads)
    assert result.ok and "1 record(s) after the recorded head" in result.message
    with AuditLog(path, key=KEY, head=heads) as log:  # catches the head up
        assert log.records == 3
    assert heads.head == AuditHead(3, records[2]["mac"])


def test_replaced_file_does_not_match_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    fill(path, 3, heads)
    heads.head = AuditHead(3, "0" * 64)
    assert check(path, heads).problem == "head_mismatch"
    with pytest.raises(AuditChainError, match="replaced"):
        AuditLog(path, key=KEY, head=heads)


def test_no_head_recorded_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    result = verify(path, KEY, None)
    assert (result.ok, result.problem) == (False, "no_head")


@pytest.mark.parametrize("tail", ['{"seq": 6, "at": "2', "garbage\n", "\n", "\xff\n"])
def test_truncated_or_garbage_line_is_found(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    with open(path, "a", encoding="latin-1") as f:
        f.write(tail)
    result = check(path)
    assert (result.ok, result.records, result.first_bad_line) == (False, 5, 6)
    assert result.problem in ("unparsable", "incomplete_line")
    with pytest.raises(AuditChainError, match="line 6"):
        AuditLog(path, key=KEY)


def test_truncated_last_record_is_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    result = check(path)
    assert (result.first_bad_line, result.problem) == (3, "incomplete_line")
    with pytest.raises(AuditChainError):
        AuditLog(path, key=KEY)


def test_open_under_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    with pytest.raises(AuditChainError, match="under this key"):
        AuditLog(path, key=OTHER_KEY)


def _unkeyed_log(path: Path, n: int) -> None:
    import hashlib
    prev = GENESIS
    out = []
    for seq in range(1, n + 1):
        record = {"seq": seq, "at": "2025-01-31T08:00:00.000Z", "who": "w", "role": "operator",
                  "method": M + "CreateIssuance", "issuance_id": None, "result": "OK",
                  "prev": prev}
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        record["hash"] = prev = hashlib.sha256(prev.encode() + body).hexdigest()
        out.append(json.dumps(record) + "\n")
    path.write_text("".join(out), encoding="utf-8")


def test_unkeyed_log_is_named_as_from_before_keying(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _unkeyed_log(path, 3)
    result = check(path)
    assert (result.ok, result.first_bad_line, result.problem) == (False, 1, "unkeyed")
    assert "before the audit log was keyed" in result.message
    # Starting the server keeps it aside and begins a keyed chain.
    with AuditLog(path, key=KEY) as log:
        assert log.records == 0
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
    kept = list(tmp_path.glob("audit.jsonl.unkeyed-*"))
    assert len(kept) == 1 and len(lines(kept[0])) == 3
    assert check(path).ok


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    first = fill(path, 3, heads)
    with AuditLog(path, key=KEY, head=heads) as log:
        assert log.records == 3
        assert log.last_mac == first[-1]["mac"]
        rec = log.append("admin-1", "admin", S + "ResetPrinter", None, "OK")
    assert rec["seq"] == 4 and rec["prev"] == first[-1]["mac"]
    result = check(path, heads)
    assert (result.ok, result.records, result.head_seq) == (True, 4, 4)


def test_open_refuses_a_tail_with_wrong_seq(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 4)
    content = lines(path)
    del content[1]  # every remaining line has a good MAC, but the chain has a hole
    path.write_text("".join(content), encoding="utf-8")
    with pytest.raises(AuditChainError, match="deleted"):
        AuditLog(path, key=KEY)


def test_long_file_tail_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=KEY) as log:
        for i in range(400):  # > several 8 KiB blocks
            log.append("w" * 50, "operator", M + "CancelIssuance", f"iss-{i}", "OK")
    with AuditLog(path, key=KEY) as log:
        assert log.records == 400
        log.append("x", "admin", S + "CleanCardPath", None, "OK")
    assert check(path).records == 401


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    heads = MemoryHead()
    with AuditLog(path, key=KEY, head=heads) as log:
        def work(n: int) -> None:
            for i in range(25):
                log.append(f"t{n}", "operator", M + "CreateIssuance", f"{n}-{i}", "OK")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = check(path, heads)
    assert (result.ok, result.records, result.head_seq) == (True, 200, 200)


def test_every_record_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=KEY).close()
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    with AuditLog(path, key=KEY) as log:
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
    assert len(calls) == 2


def test_head_store_failure_keeps_the_record(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryHead):
        def save(self, head: AuditHead) -> None:
            raise OSError(28, "No space left on device")

    path = tmp_path / "audit.jsonl"
    with caplog.at_level(logging.WARNING), AuditLog(path, key=KEY, head=Broken()) as log:
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
        assert not log.failed
    assert check(path).records == 1
    assert "could not record the head" in caplog.text


# --- the key and the journal's head -----------------------------------------------------------


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key == read_key(path)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(AuditKeyError, match=r"chmod 600 .*audit\.key"):
        load_or_create_key(path)


def test_malformed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    path.write_text("abc\n")
    path.chmod(0o600)
    with pytest.raises(AuditKeyError, match="32-byte"):
        read_key(path)


def test_head_is_kept_in_the_journal(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.sqlite"
    path = tmp_path / "audit.jsonl"
    with Journal(journal_path) as journal:
        with AuditLog(path, key=KEY, head=JournalHeadStore(journal)) as log:
            last = [log.append("a", "admin", S + "ResetPrinter", None, "OK") for _ in range(3)]
    assert read_head(journal_path) == AuditHead(3, last[-1]["mac"])
    with Journal(journal_path) as journal:  # the schema's own rows are untouched
        assert journal.meta("schema_version") is not None
        with pytest.raises(ValueError, match="schema"):
            journal.set_meta("schema_version", "9")


# --- CLI --------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="cardstation")
    audit_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


def station_log(folder: Path, n: int) -> Path:
    """An audit log as `serve` keeps it: key file and journal head beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(folder / "audit.key")
    with Journal(folder / "journal.sqlite") as journal, \
            AuditLog(folder / "audit.jsonl", key=key, head=JournalHeadStore(journal)) as log:
        for i in range(n):
            log.append(f"who{i}", "operator", M + "CreateIssuance", f"iss-{i}", "OK")
    return folder / "audit.jsonl"


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = station_log(tmp_path, 3)
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert code == 0
    assert (out["ok"], out["records"], out["first_bad_line"], out["head_seq"]) == \
        (True, 3, None, 3)

    content = lines(path)
    content[1] = content[1].replace('"OK"', '"NOT_FOUND"')
    path.write_text("".join(content), encoding="utf-8")
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert (code, out["ok"], out["records"], out["first_bad_line"], out["seq"],
            out["problem"]) == (1, False, 1, 2, 2, "bad_mac")

    code, out = run_cli(["audit", "verify", "--file", str(tmp_path / "none.jsonl")], capsys)
    assert (code, out["ok"]) == (2, False)


def test_cli_truncated_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = station_log(tmp_path, 4)
    path.write_text("".join(lines(path)[:2]), encoding="utf-8")
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert (code, out["problem"], out["first_bad_line"], out["head_seq"]) == \
        (1, "truncated_tail", 3, 4)


def test_cli_needs_key_and_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = station_log(tmp_path, 1)
    code, out = run_cli(["audit", "verify", "--file", str(path),
                         "--key", str(tmp_path / "nokey")], capsys)
    assert code == 2 and "does not exist" in out["message"]
    code, out = run_cli(["audit", "verify", "--file", str(path),
                         "--journal", str(tmp_path / "nojournal")], capsys)
    assert code == 2 and "journal" in out["message"]
    assert not (tmp_path / "nojournal").exists()  # verify never creates a journal


def test_cli_unkeyed_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    station_log(tmp_path, 0)
    _unkeyed_log(tmp_path / "audit.jsonl", 2)
    code, out = run_cli(["audit", "verify", "--file", str(tmp_path / "audit.jsonl")], capsys)
    assert (code, out["problem"]) == (3, "unkeyed")


def test_cli_restart_begins_a_new_chain(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = station_log(tmp_path, 3)
    path.write_text("".join(lines(path)[:1]), encoding="utf-8")
    code, out = run_cli(["audit", "restart", "--file", str(path)], capsys)
    assert (code, out["old_head_seq"]) == (0, 3)
    assert Path(out["kept_as"]).exists() and not path.exists()
    assert read_head(tmp_path / "journal.sqlite") is None
    station_log(tmp_path, 1)  # the server starts again
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert (code, out["records"]) == (0, 1)


def test_cli_default_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    station_log(tmp_path / "var" / "station", 2)
    code, out = run_cli(["audit", "verify"], capsys)
    assert (code, out["records"]) == (0, 2)


# --- the interceptor's records ----------------------------------------------------------------


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[Harness, dict[str, str], Path]]:
    store = TokenStore()
    tokens = {role.value: store.issue(f"{role.value}-1", role, None)[0] for role in Role}
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    h = Harness(AuthInterceptor(tokens=store, audit=log))
    yield h, tokens, path
    h.stop()
    log.close()


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def test_state_changing_calls_are_recorded(
        audited: tuple[Harness, dict[str, str], Path]) -> None:
    h, tokens, path = audited
    ch = h.channel()
    call(ch, M + "CreateIssuance", tokens["operator"],
         request=issuance_pb2.CreateIssuanceRequest(client_request_id="r", id_number=ID_NUMBER))
    call(ch, M + "CancelIssuance", tokens["operator"],
         request=issuance_pb2.CancelIssuanceRequest(id="iss-5"))
    call(ch, S + "ResetPrinter", tokens["admin"])
    got = [(r["who"], r["role"], r["method"], r["issuance_id"], r["result"])
           for r in records(path)]
    assert got == [
        ("operator-1", "operator", M + "CreateIssuance", "iss-1", "OK"),
        ("operator-1", "operator", M + "CancelIssuance", "iss-5", "OK"),
        ("admin-1", "admin", S + "ResetPrinter", None, "OK"),
    ]
    assert check(path).ok
    assert ID_NUMBER not in path.read_text()
    for token in tokens.values():
        assert token not in path.read_text()


def test_read_only_calls_are_not_recorded(
        audited: tuple[Harness, dict[str, str], Path]) -> None:
    h, tokens, path = audited
    ch = h.channel()
    for method in all_methods():
        if method not in STATE_CHANGING:
            call(ch, method, tokens["admin"])
    assert path.read_text() == ""
    for method in sorted(STATE_CHANGING):
        call(ch, method, tokens["admin"])
    assert sorted(r["method"] for r in records(path)) == sorted(STATE_CHANGING)


def test_failed_and_denied_calls_are_recorded(
        audited: tuple[Harness, dict[str, str], Path]) -> None:
    h, tokens, path = audited
    ch = h.channel()
    with pytest.raises(grpc.RpcError) as caught:
        call(ch, M + "CancelIssuance", tokens["operator"],
             request=issuance_pb2.CancelIssuanceRequest(id="missing"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "ISSUANCE_NOT_FOUND"
    with pytest.raises(grpc.RpcError):
        call(ch, M + "ReprintFace", tokens["upstream"],
             request=issuance_pb2.ReprintFaceRequest(id="iss-2"))
    with pytest.raises(grpc.RpcError):  # unauthenticated: nobody to record
        call(ch, S + "ResetPrinter")
    got = [(r["who"], r["method"], r["issuance_id"], r["result"]) for r in records(path)]
    assert got == [
        ("operator-1", M + "CancelIssuance", "missing", "NOT_FOUND"),
        ("upstream-1", M + "ReprintFace", "iss-2", "PERMISSION_DENIED"),
    ]


def test_audit_failure_refuses_further_changes(
        audited: tuple[Harness, dict[str, str], Path], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    h, tokens, _ = audited
    log = h.interceptor.audit
    assert log is not None
    ch = h.channel()

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with caplog.at_level(logging.ERROR):
        call(ch, S + "CleanCardPath", tokens["admin"])  # done; its record failed loudly
    assert log.failed
    assert "could not be written" in caplog.text
    monkeypatch.undo()
    with pytest.raises(grpc.RpcError) as caught:
        call(ch, S + "CleanCardPath", tokens["admin"])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "AUDIT_LOG_UNAVAILABLE"
    call(ch, S + "GetStation", tokens["admin"])  # reads still work


def test_serve_refuses_a_cut_log_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = station_log(tmp_path / "data", 4)
    path.write_text("".join(lines(path)[:2]), encoding="utf-8")
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{tmp_path / "data"}"\n')
    result = subprocess.run([sys.executable, "-m", "cardstation", "serve", "--config",
                             str(config), "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "head at seq 4" in result.stderr and "cut off" in result.stderr
    assert "cardstation audit restart" in result.stderr
    assert "Traceback" not in result.stderr
