"""CMS simulator over a real loopback HTTP socket: ledger rules, bad requests, faults, state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardstation.personalization.model import Application, ReturnRecord
from cardstation.personalization.rules import (
    check_card_number,
    check_id_number,
    check_photo,
)
from cardstation.simulators.cms import (
    EXAMPLE_ID_NUMBER,
    FAULTS,
    CmsSimulator,
    generate_applicants,
)

STATION = "XX-410702-01"


@pytest.fixture
def sim() -> Iterator[CmsSimulator]:
    simulator = CmsSimulator(seed=0)
    simulator.start()
    yield simulator
    simulator.stop()


def call(
    sim: CmsSimulator, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """One request; returns (HTTP status, decoded JSON body) for errors as well."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(sim.base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def record_for(app: Application, **changes: str) -> dict[str, str]:
    record = ReturnRecord(
        card_number=app.card_number,
        id_number=app.id_number,
        name=app.name,
        issue_date=app.issue_date,
        expiry_date=app.expiry_date,
        card_id_code="410700D15600000500" + "0" * 14,
        atr="3B6C00000A0B0C0D0E0F",
        bank_account="6217000000000000001",
        batch=app.batch,
    ).to_dict()
    return {**record, **changes}


def app_of(sim: CmsSimulator, id_number: str) -> Application:
    return Application.from_dict(sim.ledger()["applications"][id_number])


# ---- sample data --------------------------------------------------------------------------


def test_default_ledger_has_the_example_and_sample_roles() -> None:
    sim = CmsSimulator(seed=0)
    apps = sim.ledger()["applications"]
    example = apps[EXAMPLE_ID_NUMBER]
    assert (example["name"], example["sex"], example["birth_date"]) == ("李秀英", "2", "19491231")
    assert (example["birthplace"], example["card_number"]) == ("110105", "D2143569X")
    assert example["status"] == "ready" and example["fee_registered"] is True
    assert sim.samples["example"] == EXAMPLE_ID_NUMBER
    assert len(sim.samples["ready"]) == 5
    assert apps[sim.samples["not_marked"]]["status"] == "not_marked"
    bad = Application.from_dict(apps[sim.samples["bad_photo"]])
    assert {f.code for f in check_photo(bad.photo)} >= {"too_small", "dark_background"}
    for id_number in sim.samples["ready"]:
        app = Application.from_dict(apps[id_number])
        assert check_photo(app.photo) == []
        assert check_id_number(app.id_number) == [] and check_card_number(app.card_number) == []


def test_generate_applicants_unique_valid_and_deterministic() -> None:
    people = generate_applicants(25, seed=7)
    assert len({p.id_number for p in people}) == 25
    assert len({p.card_number for p in people}) == 25
    for p in people:
        assert check_id_number(p.id_number) == [], p.id_number
        assert check_card_number(p.card_number) == []
        assert p.sex == ("1" if int(p.id_number[16]) % 2 else "2")
        assert p.birth_date == p.id_number[6:14] and p.birthplace == p.id_number[:6]
    assert [p.id_number for p in generate_applicants(25, seed=7)] == [p.id_number for p in people]
    assert generate_applicants(3, seed=8)[0].id_number != people[0].id_number
    seeded = CmsSimulator(seed=5, extra_applicants=20)
    assert len(seeded.samples["ready"]) == 25
    assert seeded.samples["ready"] != CmsSimulator(seed=6).samples["ready"][:25]


# ---- happy path ---------------------------------------------------------------------------


def test_fetch_claim_return_failure_restore(sim: CmsSimulator) -> None:
    status, body = call(sim, "GET", f"/applications/{EXAMPLE_ID_NUMBER}")
    assert status == 200 and body["status"] == "ready"
    app = Application.from_dict(body)
    assert app == app_of(sim, EXAMPLE_ID_NUMBER) and app.photo.startswith(b"\xff\xd8")

    path = f"/applications/{EXAMPLE_ID_NUMBER}/claim"
    assert call(sim, "POST", path, {"station": STATION})[0] == 200
    assert call(sim, "POST", path, {"station": STATION})[0] == 200  # idempotent for the holder
    assert sim.ledger()["claims"][EXAMPLE_ID_NUMBER]["station"] == STATION

    other = sim.samples["ready"][1]
    call(sim, "POST", f"/applications/{other}/claim", {"station": STATION})
    status, body = call(
        sim,
        "POST",
        "/failures",
        {
            "idempotency_key": "f-1",
            "station": STATION,
            "id_number": other,
            "reason": "write failed",
        },
    )
    assert status == 200 and body["duplicate"] is False
    assert sim.ledger()["applications"][other]["status"] == "failed"
    status, body = call(sim, "POST", f"/applications/{other}/claim", {"station": STATION})
    assert (status, body["error"]) == (409, "restore_required")
    assert call(sim, "POST", f"/applications/{other}/restore", {})[0] == 200
    entry = sim.ledger()["applications"][other]
    assert entry["status"] == "ready" and entry["claimed_by"] is None
    assert len(sim.ledger()["failures"]) == 1  # history is kept

    record = record_for(app)
    body = {"idempotency_key": "k-1", "station": STATION, "record": record}
    status, answer = call(sim, "POST", "/returns", body)
    assert status == 200 and answer["duplicate"] is False and answer["ack"]
    entry = sim.ledger()["applications"][EXAMPLE_ID_NUMBER]
    assert entry["status"] == "made" and entry["city_centre_received_at"]
    status, body = call(sim, "POST", path, {"station": STATION})
    assert (status, body["error"]) == (409, "already_made")


def test_duplicate_return_is_acknowledged_once(sim: CmsSimulator) -> None:
    app = app_of(sim, EXAMPLE_ID_NUMBER)
    body = {"idempotency_key": "k-1", "station": STATION, "record": record_for(app)}
    first = call(sim, "POST", "/returns", body)[1]
    second = call(sim, "POST", "/returns", body)[1]
    assert second == {"ack": first["ack"], "duplicate": True}
    # The same card under a new key (a station that lost its key) is still one return.
    third = call(sim, "POST", "/returns", {**body, "idempotency_key": "k-2"})[1]
    assert third == {"ack": first["ack"], "duplicate": True}
    assert len(sim.ledger()["returns"]) == 1 and sim.ledger()["conflicts"] == []


def test_conflicting_returns_are_rejected_and_recorded(sim: CmsSimulator) -> None:
    app = app_of(sim, EXAMPLE_ID_NUMBER)
    body = {"idempotency_key": "k-1", "station": STATION, "record": record_for(app)}
    call(sim, "POST", "/returns", body)
    changed = {**body, "record": record_for(app, bank_account="6217000000000000999")}
    status, answer = call(sim, "POST", "/returns", changed)  # same key, different record
    assert (status, answer["error"]) == (409, "return_conflict")
    status, answer = call(sim, "POST", "/returns", {**changed, "idempotency_key": "k-2"})
    assert (status, answer["error"]) == (409, "return_conflict")  # second card, same holder
    other = app_of(sim, sim.samples["ready"][1])
    wrong = {
        "idempotency_key": "k-3",
        "station": STATION,
        "record": record_for(other, card_number="D2143569X"),
    }
    assert call(sim, "POST", "/returns", wrong)[0] == 409
    ledger = sim.ledger()
    assert len(ledger["returns"]) == 1 and len(ledger["conflicts"]) == 3
    assert ledger["conflicts"][0]["existing"]["record"] == body["record"]
    assert ledger["applications"][other.id_number]["status"] == "ready"
    assert EXAMPLE_ID_NUMBER not in answer["message"]


def test_claimed_elsewhere_not_marked_unknown(sim: CmsSimulator) -> None:
    path = f"/applications/{EXAMPLE_ID_NUMBER}/claim"
    call(sim, "POST", path, {"station": "A"})
    status, body = call(sim, "POST", path, {"station": "B"})
    assert (status, body["error"], body["station"]) == (409, "claimed_elsewhere", "A")
    app = app_of(sim, EXAMPLE_ID_NUMBER)
    status, body = call(
        sim, "POST", "/returns", {"idempotency_key": "b", "station": "B", "record": record_for(app)}
    )
    assert (status, body["error"]) == (409, "claimed_elsewhere")

    status, body = call(sim, "GET", f"/applications/{sim.samples['not_marked']}")
    assert (status, body["error"]) == (409, "not_marked")
    unpaid = generate_applicants(1, seed=99)[0]
    sim.add_application(unpaid, fee_registered=False)
    status, body = call(sim, "GET", f"/applications/{unpaid.id_number}")
    assert (status, body["error"]) == (409, "not_marked") and "fee" in body["message"]
    status, body = call(sim, "GET", "/applications/410702199001010011")
    assert (status, body["error"]) == (404, "unknown_application")
    assert "410702199001010011" not in body["message"]


def test_concurrent_claims_have_one_winner(sim: CmsSimulator) -> None:
    path = f"/applications/{EXAMPLE_ID_NUMBER}/claim"
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda n=n: results.append(call(sim, "POST", path, {"station": f"S{n}"})[0])
        )
        for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 7


# ---- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "code"),
    [
        ("POST", "/applications/{id}/claim", b"{not json", 400, "malformed_json"),
        ("POST", "/applications/{id}/claim", b"{}", 400, "missing_field"),
        ("POST", "/applications/{id}/claim", b'{"station": 5}', 400, "invalid_field"),
        ("POST", "/applications/{id}/claim", b"[1, 2]", 400, "bad_request"),
        ("POST", "/returns", b'{"idempotency_key": "k", "station": "S"}', 400, "missing_field"),
        (
            "POST",
            "/returns",
            b'{"idempotency_key": "k", "station": "S", "record": {"id_number": "x"}}',
            400,
            "missing_field",
        ),
        ("POST", "/failures", b'{"idempotency_key": "k", "station": "S"}', 400, "missing_field"),
        ("POST", "/applications", b'{"application": {"name": "x"}}', 400, "invalid_field"),
        ("POST", "/_faults", b'{"fault": "meteor"}', 400, "invalid_fault"),
        ("GET", "/nothing", None, 404, "not_found"),
        ("DELETE", "/returns", None, 405, "method_not_allowed"),
    ],
)
def test_malformed_requests_get_clear_errors_and_change_nothing(
    sim: CmsSimulator, method: str, path: str, raw: bytes | None, status: int, code: str
) -> None:
    before = sim.ledger()
    got, body = call(sim, method, path.format(id=EXAMPLE_ID_NUMBER), raw=raw)
    assert (got, body["error"]) == (status, code)
    assert body["message"]
    assert sim.ledger() == before and sim.faults() == {}


# ---- faults -------------------------------------------------------------------------------


def test_faults_over_http_and_admin_endpoints_stay_up(sim: CmsSimulator) -> None:
    assert set(FAULTS) == {"down", "error_5xx", "slow", "malformed", "fail_returns",
                           "certificate_status"}
    status, body = call(sim, "POST", "/_faults", {"fault": "error_5xx", "status": 502})
    assert status == 200 and body["faults"] == {"error_5xx": {"status": 502}}
    status, body = call(sim, "GET", f"/applications/{EXAMPLE_ID_NUMBER}")
    assert (status, body["error"]) == (502, "injected_5xx")
    call(sim, "POST", "/_faults", {"fault": "down"})
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        call(sim, "GET", "/health")
    assert call(sim, "GET", "/ledger?photos=0")[0] == 200  # admin is never faulted
    assert "photo" not in call(sim, "GET", "/ledger?photos=0")[1]["applications"][EXAMPLE_ID_NUMBER]
    assert call(sim, "DELETE", "/_faults")[1] == {"faults": {}}
    assert call(sim, "GET", "/health") == (200, {"ok": True})


def test_fail_returns_counts_down_and_changes_nothing(sim: CmsSimulator) -> None:
    app = app_of(sim, EXAMPLE_ID_NUMBER)
    body = {"idempotency_key": "k", "station": STATION, "record": record_for(app)}
    call(sim, "POST", "/_faults", {"fault": "fail_returns", "count": 2})
    assert call(sim, "POST", "/returns", body)[0] == 503
    assert call(sim, "GET", f"/applications/{EXAMPLE_ID_NUMBER}")[0] == 200  # only returns fail
    assert call(sim, "POST", "/returns", body)[0] == 503
    assert sim.ledger()["returns"] == []
    assert call(sim, "POST", "/returns", body)[0] == 200
    assert sim.faults() == {}


def test_inject_rejects_bad_parameters(sim: CmsSimulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sim.inject("gremlins")
    with pytest.raises(ValueError):
        sim.inject("error_5xx", status=404)
    with pytest.raises(ValueError):
        sim.inject("slow", delay=3)
    sim.inject("slow", seconds=0.01)
    assert sim.faults() == {"slow": {"seconds": 0.01}}
    sim.clear_faults()
    assert sim.faults() == {}


# ---- state file and command line ----------------------------------------------------------


def test_state_file_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "cms.json"
    first = CmsSimulator(seed=1, state_path=state)
    first.start()
    app = app_of(first, EXAMPLE_ID_NUMBER)
    call(first, "POST", f"/applications/{EXAMPLE_ID_NUMBER}/claim", {"station": STATION})
    call(
        first,
        "POST",
        "/returns",
        {"idempotency_key": "k", "station": STATION, "record": record_for(app)},
    )
    call(
        first,
        "POST",
        "/returns",
        {"idempotency_key": "k", "station": STATION, "record": record_for(app, atr="00")},
    )
    before = first.ledger()
    first.stop()

    second = CmsSimulator(seed=99, state_path=state)  # the file wins over the seed
    assert second.ledger() == before
    second.start()
    try:
        again = call(
            second,
            "POST",
            "/returns",
            {"idempotency_key": "k", "station": STATION, "record": record_for(app)},
        )
        assert again[1] == {"ack": before["returns"][0]["ack"], "duplicate": True}
    finally:
        second.stop()

    state.write_text("{broken", encoding="utf-8")
    with pytest.raises(ValueError, match="unreadable"):
        CmsSimulator(state_path=state)


def test_run_prints_url_first_and_serves(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cardstation.simulators.cms",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--state",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/applications/{EXAMPLE_ID_NUMBER}", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ready"
        assert state.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert EXAMPLE_ID_NUMBER not in out + err
