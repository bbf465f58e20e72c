"""Which role may call which method: the tables, and a method's policy resolved from them once
(the interceptor keeps it with the method's wrapped handler). Methods of our package that
`METHOD_ROLES` does not list are denied to everyone (fail closed); grpc.health.v1 and
grpc.reflection are open. Calls to `STATE_CHANGING` methods are audited."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cardstation.server.auth.identity import Role
from cardstation.server.errors import PACKAGE


def _m(service: str, method: str) -> str:
    return f"/{PACKAGE}.{service}/{method}"


_OPERATOR = frozenset({Role.OPERATOR, Role.ADMIN})
_UPSTREAM = frozenset({Role.UPSTREAM, Role.ADMIN})
_BOTH = frozenset({Role.OPERATOR, Role.UPSTREAM, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})

#: IntakeService's RPCs, and those of them that change something at the CMS
INTAKE_CHANGES = ("SubmitApplication", "RegisterFee", "MarkInstantIssuance", "HandOverCard",
                  "ReportLoss", "LiftLoss", "CancelCard", "ApplyReplacement")
INTAKE_METHODS = ("NormalisePhoto", "GetCardLife", *INTAKE_CHANGES)

# Every RPC of the protos -> the roles that may call it. Admin may call everything.
METHOD_ROLES: dict[str, frozenset[Role]] = {
    # IssuanceService
    _m("IssuanceService", "GetApplication"): _BOTH,
    _m("IssuanceService", "PreviewCard"): _OPERATOR,
    _m("IssuanceService", "CreateIssuance"): _BOTH,
    _m("IssuanceService", "GetIssuance"): _BOTH,
    _m("IssuanceService", "ListIssuances"): _BOTH,
    _m("IssuanceService", "WatchIssuance"): _BOTH,
    _m("IssuanceService", "CancelIssuance"): _OPERATOR,
    _m("IssuanceService", "ResumeIssuance"): _OPERATOR,
    _m("IssuanceService", "ReprintFace"): _OPERATOR,
    _m("IssuanceService", "RejectCard"): _OPERATOR,
    _m("IssuanceService", "MarkSpoiled"): _OPERATOR,
    _m("IssuanceService", "RestoreAndResend"): _OPERATOR,
    # StationService: the fault table makes calibration, cleaning and reset operator tasks
    _m("StationService", "GetStation"): _BOTH,
    _m("StationService", "WatchStation"): _BOTH,
    _m("StationService", "CalibrateRibbonSensor"): _OPERATOR,
    _m("StationService", "CleanCardPath"): _OPERATOR,
    _m("StationService", "ResetPrinter"): _OPERATOR,
    # ReturnService: operators see and resend returns (失败数据回盘); upstream systems watch
    _m("ReturnService", "ListReturns"): _BOTH,
    _m("ReturnService", "RetryReturns"): _OPERATOR,
    # WindowService: the operator at the window (reads, PINs, temporary cards)
    **{_m("WindowService", name): _OPERATOR for name in (
        "ReadIdCard", "ReadCard", "RevealCardNumbers", "WatchPinEntry", "VerifyReturnedCard",
        "VerifyPin", "ChangePin", "UnblockPin",
        "ResetPin", "IssueTemporaryCard", "RewriteTemporaryCard", "RecallTemporaryCard")},
    # IntakeService: the window's intake and card life (the operator at the window)
    **{_m("IntakeService", name): _OPERATOR for name in INTAKE_METHODS},
}

# Methods whose every call is written to the audit log: the state changes, and the one read that
# shows personal numbers in full (RevealCardNumbers).
STATE_CHANGING: frozenset[str] = frozenset(
    {
        _m("IssuanceService", "CreateIssuance"),
        _m("IssuanceService", "CancelIssuance"),
        _m("IssuanceService", "ResumeIssuance"),
        _m("IssuanceService", "ReprintFace"),
        _m("IssuanceService", "RejectCard"),
        _m("IssuanceService", "MarkSpoiled"),
        _m("IssuanceService", "RestoreAndResend"),
        _m("ReturnService", "RetryReturns"),
        _m("StationService", "CalibrateRibbonSensor"),
        _m("StationService", "CleanCardPath"),
        _m("StationService", "ResetPrinter"),
        _m("WindowService", "RevealCardNumbers"),
        _m("WindowService", "ChangePin"),
        _m("WindowService", "UnblockPin"),
        _m("WindowService", "ResetPin"),
        _m("WindowService", "IssueTemporaryCard"),
        _m("WindowService", "RewriteTemporaryCard"),
        _m("WindowService", "RecallTemporaryCard"),
        *(_m("IntakeService", name) for name in INTAKE_CHANGES),
    }
)

# Services callable without credentials.
OPEN_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.", "/grpc.reflection.")


def is_open_method(method: str) -> bool:
    """True for health checking and server reflection, which need no credentials."""
    return method.startswith(OPEN_PREFIXES)


@dataclass(frozen=True)
class MethodPolicy:
    """What the interceptor needs to know about one method, resolved once per method:
    who may call it (None: nobody, fail closed) and whether its calls are audited."""

    method: str
    allowed: frozenset[Role] | None
    audited: bool


def resolve_policy(method: str, method_roles: Mapping[str, frozenset[Role]],
                   state_changing: frozenset[str]) -> MethodPolicy:
    """The method's roles and audit flag, from the tables."""
    return MethodPolicy(method, method_roles.get(method), method in state_changing)
