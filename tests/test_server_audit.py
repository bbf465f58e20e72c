"""The hash-chained audit log, its verifier, the CLI, and the interceptor's audit records."""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cardstation.commands import audit as audit_command
from cardstation.protos.cardstation.v1 import issuance_pb2
from cardstation.server.audit import GENESIS, AuditChainError, AuditLog, record_hash, verify
from cardstation.server.auth import STATE_CHANGING, AuthInterceptor, Role, TokenStore
from cardstation.server.errors import error_info
from tests.test_server_auth import ID_NUMBER, Harness, all_methods, call

M = "/cardstation.v1.IssuanceService/"
S = "/cardstation.v1.StationService/"


def fill(path: Path, n: int = 5) -> list[dict[str, Any]]:
    with AuditLog(path) as log:
        return [log.append(f"who{i}", "operator", M + "CreateIssuance", f"iss-{i}", "OK")
                for i in range(n)]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


# --- the file ---------------------------------------------------------------------------------


def test_chain_is_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    records = fill(path, 3)
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev"] == GENESIS
    assert records[1]["prev"] == records[0]["hash"]
    parsed = [json.loads(line) for line in lines(path)]
    assert parsed == records
    for r in parsed:
        assert set(r) == {"seq", "at", "who", "role", "method", "issuance_id", "result",
                          "prev", "hash"}
        assert r["hash"] == record_hash(r)
    assert verify(path) == verify(path)
    result = verify(path)
    assert (result.ok, result.records, result.first_bad_line) == (True, 3, None)


def test_empty_file_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    assert verify(path).ok and verify(path).records == 0


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
    result = verify(path)
    assert not result.ok
    assert result.first_bad_line == 3
    assert result.records == 2


def test_edit_with_rehash_breaks_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 4)
    content = lines(path)
    record = json.loads(content[1])
    record["who"] = "mallory"
    record["hash"] = record_hash(record)
    content[1] = json.dumps(record) + "\n"
    path.write_text("".join(content), encoding="utf-8")
    assert verify(path).first_bad_line == 3


def test_deleted_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    content = lines(path)
    del content[1]
    path.write_text("".join(content), encoding="utf-8")
    result = verify(path)
    assert (result.ok, result.first_bad_line) == (False, 2)
    assert "deleted" in result.message


def test_deleted_first_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    path.write_text("".join(lines(path)[1:]), encoding="utf-8")
    assert verify(path).first_bad_line == 1


def test_reordered_lines_are_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    path.write_text("".join(content), encoding="utf-8")
    assert verify(path).first_bad_line == 3


@pytest.mark.parametrize("tail", ['{"seq": 6, "at": "2', "garbage\n", "\n", "\xff\n"])
def test_truncated_or_garbage_line_is_found(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    with open(path, "a", encoding="latin-1") as f:
        f.write(tail)
    result = verify(path)
    assert (result.ok, result.records, result.first_bad_line) == (False, 5, 6)
    with pytest.raises(AuditChainError, match="line 6"):
        AuditLog(path)


def test_truncated_last_record_is_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    assert verify(path).first_bad_line == 3
    with pytest.raises(AuditChainError):
        AuditLog(path)


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = fill(path, 3)
    with AuditLog(path) as log:
        assert log.records == 3
        assert log.last_hash == first[-1]["hash"]
        rec = log.append("admin-1", "admin", S + "ResetPrinter", None, "OK")
    assert rec["seq"] == 4 and rec["prev"] == first[-1]["hash"]
    result = verify(path)
    assert (result.ok, result.records) == (True, 4)


def test_open_refuses_a_tail_with_wrong_seq(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 4)
    content = lines(path)
    del content[1]  # every remaining line hashes fine, but the chain has a hole
    path.write_text("".join(content), encoding="utf-8")
    with pytest.raises(AuditChainError, match="deleted"):
        AuditLog(path)


def test_long_file_tail_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(400):  # > several 8 KiB blocks
            log.append("w" * 50, "operator", M + "CancelIssuance", f"iss-{i}", "OK")
    with AuditLog(path) as log:
        assert log.records == 400
        log.append("x", "admin", S + "CleanCardPath", None, "OK")
    assert verify(path).records == 401


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        def work(n: int) -> None:
            for i in range(25):
                log.append(f"t{n}", "operator", M + "CreateIssuance", f"{n}-{i}", "OK")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify(path)
    assert (result.ok, result.records) == (True, 200)


def test_every_record_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    with AuditLog(path) as log:
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
        log.append("a", "admin", S + "ResetPrinter", None, "OK")
    assert len(calls) == 2


# --- CLI --------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="cardstation")
    audit_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert code == 0
    assert out == {"ok": True, "records": 3, "first_bad_line": None, "message": out["message"]}

    content = lines(path)
    content[1] = content[1].replace('"OK"', '"NOT_FOUND"')
    path.write_text("".join(content), encoding="utf-8")
    code, out = run_cli(["audit", "verify", "--file", str(path)], capsys)
    assert (code, out["ok"], out["records"], out["first_bad_line"]) == (1, False, 1, 2)

    code, out = run_cli(["audit", "verify", "--file", str(tmp_path / "none.jsonl")], capsys)
    assert (code, out["ok"]) == (2, False)


def test_cli_default_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fill(tmp_path / "var" / "station" / "audit.jsonl", 2)
    code, out = run_cli(["audit", "verify"], capsys)
    assert (code, out["records"]) == (0, 2)


# --- the interceptor's records ----------------------------------------------------------------


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[Harness, dict[str, str], Path]]:
    store = TokenStore()
    tokens = {role.value: store.issue(f"{role.value}-1", role, None)[0] for role in Role}
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
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
    assert verify(path).ok
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
