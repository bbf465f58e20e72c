"""The window service's reason vocabulary: UPPER_SNAKE constants at the source, each raise
giving a cause and a remedy, each reason mapped to one gRPC code."""

from __future__ import annotations

import ast
import inspect
import re

import grpc

from cardstation.drivers.idreader.errors import CardAuthFailed, NoCard, PortUnavailable
from cardstation.personalization import pinentry
from cardstation.personalization import window as w
from cardstation.server.window_servicer import REASON_CODES, window_error_code


def window_error_calls(module) -> list[ast.Call]:
    tree = ast.parse(inspect.getsource(module))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == "WindowError"]


def test_reasons_are_upper_snake_constants() -> None:
    assert len(w.REASONS) == len(set(w.REASONS)) >= 30
    for reason in w.REASONS:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", reason), reason
    assert set(REASON_CODES) <= set(w.REASONS)


def test_every_window_error_names_a_constant_reason_and_gives_a_remedy() -> None:
    for module in (w, pinentry):
        calls = window_error_calls(module)
        assert calls
        for call in calls:
            where = f"{module.__name__} line {call.lineno}"
            reason = call.args[0]
            # a constant, or a reason passed on from another WindowError / the CMS mapping
            assert isinstance(reason, ast.Name | ast.Attribute), where
            if isinstance(reason, ast.Name):
                assert reason.id in vars(w) or reason.id == "reason", where
            assert len(call.args) == 3 or any(k.arg == "remedy" for k in call.keywords), where


def test_grpc_codes() -> None:
    assert window_error_code(w.PIN_ENTRY_CANCELLED) == grpc.StatusCode.ABORTED
    assert window_error_code(w.TEMPORARY_ISSUE_ROLLED_BACK) == grpc.StatusCode.ABORTED
    assert window_error_code(w.TEMPORARY_ISSUE_INCOMPLETE) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert window_error_code(w.DESK_READER_UNAVAILABLE) == grpc.StatusCode.UNAVAILABLE
    assert window_error_code(w.INVALID_HOLDER) == grpc.StatusCode.INVALID_ARGUMENT
    assert window_error_code(w.TEMPORARY_CARD_OUTSTANDING) == grpc.StatusCode.ALREADY_EXISTS
    assert window_error_code("CMS_RETURN_CONFLICT") == grpc.StatusCode.FAILED_PRECONDITION


def test_window_error_text_is_cause_then_remedy() -> None:
    error = w.WindowError(w.NO_CARD, "no card in the desk reader", "insert the card")
    assert str(error) == "no card in the desk reader — insert the card"
    assert (error.reason, error.cause, error.remedy) == (w.NO_CARD, "no card in the desk "
                                                         "reader", "insert the card")


def test_idreader_reasons() -> None:
    assert w.idreader_reason(NoCard()) == "NO_ID_CARD"
    assert w.idreader_reason(PortUnavailable("gone")) == "IDREADER_NOT_RESPONDING"
    assert w.idreader_reason(CardAuthFailed()) == "IDREADER_CARD_AUTH_FAILED"
