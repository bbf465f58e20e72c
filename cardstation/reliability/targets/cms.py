"""The CMS client reading HTTP/JSON answers: whatever the CMS answers (any status, any JSON,
broken JSON, a broken connection), every client operation returns or raises a CmsError, and
it fetches a valid application correctly afterwards.

The HTTP connection is scripted (no socket): the input gives the status and the body of the
answer, or the transport error the connection raises.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from cardstation.personalization.cms import CmsClient, CmsError
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.reliability.fuzz_target import MUTANTS, Target, mutate
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER, example_applicant

OPERATIONS = ("fetch", "claim", "submit_return", "report_failure", "restore",
              "issue_certificates", "check_temporary_card", "record_temporary_card",
              "get_temporary_card", "recall_temporary_card", "void_temporary_card")
APPLICATION = example_applicant()
APPLICATION_JSON = {f.name: getattr(APPLICATION, f.name) for f in fields(Application)}
APPLICATION_JSON["photo"] = base64.b64encode(APPLICATION.photo).decode()
RECORD = ReturnRecord("A12345678", EXAMPLE_ID_NUMBER, "李秀英", "20261201", "20361201",
                      "0" * 32, "3B" * 8, "6217000000000000000", "B1")
TRANSPORT_ERRORS = (TimeoutError("timed out"), ConnectionRefusedError(111, "refused"),
                    http.client.RemoteDisconnected("closed"),
                    http.client.IncompleteRead(b"{"), http.client.BadStatusLine("x"),
                    http.client.LineTooLong("header line"))
#: One answer: (HTTP status, body bytes, index into TRANSPORT_ERRORS or -1 for none).
Answer = tuple[int, bytes, int]


class _Response:
    will_close = False  # a kept-alive answer: the client keeps the connection when read whole

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body = status, body
        self._read = False

    def read(self, n: int) -> bytes:
        self._read = len(self._body) <= n
        return self._body[:n]

    def isclosed(self) -> bool:
        return self._read


class ScriptedConnection:
    """What the client needs of an http.client connection; answers with `answer`."""

    def __init__(self, answer: Answer, connect_fails: bool) -> None:
        self.answer, self.connect_fails = answer, connect_fails
        self.sock = None

    def connect(self) -> None:
        if self.connect_fails:
            raise TRANSPORT_ERRORS[self.answer[2] % 2]  # timeout or refused

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> None:
        pass

    def getresponse(self) -> _Response:
        status, body, error = self.answer
        if error >= 0:
            raise TRANSPORT_ERRORS[error]
        return _Response(status, body)

    def close(self) -> None:
        pass


class ScriptedCms(CmsClient):
    """The real client, its connection scripted."""

    def __init__(self) -> None:
        super().__init__("http://cms.invalid:8080/api", "410700-FUZZ")
        self.answer: Answer = (200, b"{}", -1)
        self.connect_fails = False

    def _connection(self) -> Any:
        return ScriptedConnection(self.answer, self.connect_fails)


def _call(cms: ScriptedCms, operation: str) -> Any:
    i = EXAMPLE_ID_NUMBER
    match operation:
        case "fetch":
            return cms.fetch(i)
        case "claim" | "restore":
            return getattr(cms, operation)(i)
        case "submit_return":
            return cms.submit_return(RECORD, "key-1")
        case "report_failure":
            return cms.report_failure(i, "chip write failed", "key-2")
        case "issue_certificates":
            return cms.issue_certificates(i, "0" * 32, b"\x04" + bytes(64))
        case "check_temporary_card":
            return cms.check_temporary_card("0" * 32, i)
        case "record_temporary_card":
            return cms.record_temporary_card("0" * 32, i, "李秀英", "20261201", "20270101")
        case "void_temporary_card":
            return cms.void_temporary_card("0" * 32, i)
        case _:
            return getattr(cms, operation)("0" * 32)


def _feed(cms: ScriptedCms, example: tuple[str, Answer, bool]) -> None:
    operation, answer, connect_fails = example
    cms.answer, cms.connect_fails = answer, connect_fails
    _call(cms, operation)


def _alive(cms: ScriptedCms) -> None:
    cms.answer = (200, json.dumps({**APPLICATION_JSON, "status": "ready"}).encode(), -1)
    cms.connect_fails = False
    assert cms.fetch(EXAMPLE_ID_NUMBER) == APPLICATION


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)
_keys = st.sampled_from(["ack", "duplicate", "error", "message", "status", "issued",
                         "id_number", "photo", "name", "certificates", "claimed_by",
                         *APPLICATION_JSON])
_shaped = st.dictionaries(_keys, _json, max_size=6)
_application = st.builds(lambda changes: {**APPLICATION_JSON, **changes},
                         st.dictionaries(_keys, _json, max_size=3))
_body = st.one_of(
    st.builds(lambda v: json.dumps(v).encode(), _json | _shaped | _application),
    st.binary(max_size=60),
    st.just(json.dumps(APPLICATION_JSON).encode()),
)
_status = st.sampled_from([200, 201, 204, 400, 404, 409, 410, 422, 500, 502, 503]) \
    | st.integers(100, 599)
_answer = st.tuples(_status, _body, st.sampled_from([-1] * 8 + list(range(len(TRANSPORT_ERRORS)))))


def _expand(example: tuple[str, Answer, bool], rng: random.Random) -> list[Any]:
    operation, (status, body, error), connect_fails = example
    return [example] + [(operation, (status, mutate(body, rng), error), connect_fails)
                        for _ in range(MUTANTS)]


TARGET = Target(
    name="cms",
    strategy=st.tuples(st.sampled_from(OPERATIONS), _answer,
                       st.sampled_from([False] * 7 + [True])),  # connect fails
    make=ScriptedCms,
    feed=_feed,
    documented=(CmsError,),
    alive=_alive,
    expand=_expand,
)
