"""CMS client against the simulator over real loopback HTTP: results, errors, faults, threads."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from cardstation.personalization.cms import (
    AlreadyMade,
    ApplicationNotFound,
    ClaimedElsewhere,
    CmsClient,
    CmsError,
    CmsProtocolError,
    CmsUnavailable,
    NotMarkedForInstantIssuance,
    RestoreRequired,
    ReturnConflict,
)
from cardstation.personalization.http_link import ConnectionPerThread
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.simulators.cms import EXAMPLE_ID_NUMBER, CmsSimulator

STATION = "XX-410702-01"
UNKNOWN_ID = "410702199001010011"


@pytest.fixture
def sim() -> Iterator[CmsSimulator]:
    simulator = CmsSimulator(seed=0)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: CmsSimulator) -> CmsClient:
    return CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=2.0)


def record_for(app: Application, **changes: str) -> ReturnRecord:
    data = {
        "card_number": app.card_number,
        "id_number": app.id_number,
        "name": app.name,
        "issue_date": app.issue_date,
        "expiry_date": app.expiry_date,
        "card_id_code": "410700D156000005" + "0" * 16,
        "atr": "3B6C00000A0B0C0D0E0F",
        "bank_account": "6217000000000000001",
        "batch": app.batch,
    }
    return ReturnRecord(**{**data, **changes})


def assert_masked(exc: CmsError, *id_numbers: str) -> None:
    for id_number in id_numbers:
        assert id_number not in str(exc)
    assert "—" in str(exc)  # cause — remedy


def test_happy_path(sim: CmsSimulator, client: CmsClient) -> None:
    app = client.fetch(EXAMPLE_ID_NUMBER)
    assert app.name == "李秀英" and app.card_number == "D2143569X" and len(app.photo) > 14_000
    client.claim(EXAMPLE_ID_NUMBER)
    client.claim(EXAMPLE_ID_NUMBER)  # idempotent
    ack = client.submit_return(record_for(app), "key-1")
    assert client.submit_return(record_for(app), "key-1") == ack  # duplicate: same ack
    ledger = sim.ledger()
    assert len(ledger["returns"]) == 1 and ledger["returns"][0]["ack"] == ack
    assert ledger["applications"][EXAMPLE_ID_NUMBER]["status"] == "made"

    other = sim.samples["ready"][1]
    client.claim(other)
    client.report_failure(other, "chip write failed", "fail-1")
    client.report_failure(other, "chip write failed", "fail-1")  # retried: still one
    assert len(sim.ledger()["failures"]) == 1
    with pytest.raises(RestoreRequired) as info:
        client.claim(other)
    assert "恢复申请" in str(info.value)
    client.restore(other)
    client.claim(other)
    assert sim.ledger()["claims"][other]["station"] == STATION


def test_application_errors(sim: CmsSimulator, client: CmsClient) -> None:
    with pytest.raises(ApplicationNotFound) as nf:
        client.fetch(UNKNOWN_ID)
    assert nf.value.reason == "unknown_application" and nf.value.status == 404
    assert "410702********0011" in str(nf.value)
    assert_masked(nf.value, UNKNOWN_ID)

    not_marked = sim.samples["not_marked"]
    with pytest.raises(NotMarkedForInstantIssuance) as nm:
        client.fetch(not_marked)
    assert "交费登记" in str(nm.value) and "即制卡标注" in str(nm.value)
    assert not nm.value.retryable
    assert_masked(nm.value, not_marked)

    CmsClient(sim.base_url, "OTHER-STATION").claim(EXAMPLE_ID_NUMBER)
    with pytest.raises(ClaimedElsewhere) as ce:
        client.claim(EXAMPLE_ID_NUMBER)
    assert ce.value.station == "OTHER-STATION" and "OTHER-STATION" in str(ce.value)
    assert_masked(ce.value, EXAMPLE_ID_NUMBER)


def test_return_conflict_and_already_made(sim: CmsSimulator, client: CmsClient) -> None:
    app = client.fetch(EXAMPLE_ID_NUMBER)
    client.claim(EXAMPLE_ID_NUMBER)
    client.submit_return(record_for(app), "key-1")
    with pytest.raises(ReturnConflict) as rc:
        client.submit_return(record_for(app, bank_account="6217000000000000999"), "key-1")
    assert rc.value.reason == "return_conflict" and not rc.value.retryable
    assert_masked(rc.value, EXAMPLE_ID_NUMBER)
    assert "6217000000000000999" not in str(rc.value)
    assert len(sim.ledger()["conflicts"]) == 1 and len(sim.ledger()["returns"]) == 1
    with pytest.raises(AlreadyMade):
        client.claim(EXAMPLE_ID_NUMBER)


def test_down_and_refused_are_unavailable(sim: CmsSimulator, client: CmsClient) -> None:
    sim.inject("down")
    with pytest.raises(CmsUnavailable) as down:
        client.fetch(EXAMPLE_ID_NUMBER)
    assert down.value.retryable and down.value.reason == "unreachable"
    app = Application.from_dict(sim.ledger()["applications"][EXAMPLE_ID_NUMBER])
    with pytest.raises(CmsUnavailable) as ret:
        client.submit_return(record_for(app), "key-1")
    assert "the return is kept and retried" in str(ret.value)
    assert "CMS unreachable" in str(ret.value)

    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CmsUnavailable, match="refused"):
        CmsClient(f"http://127.0.0.1:{port}", STATION).fetch(EXAMPLE_ID_NUMBER)


def test_5xx_and_fail_returns(sim: CmsSimulator, client: CmsClient) -> None:
    sim.inject("error_5xx", status=503)
    with pytest.raises(CmsUnavailable) as err:
        client.claim(EXAMPLE_ID_NUMBER)
    assert (err.value.reason, err.value.status) == ("server_error", 503)
    sim.clear_faults()

    app = client.fetch(EXAMPLE_ID_NUMBER)
    sim.inject("fail_returns", count=2)
    for _ in range(2):
        with pytest.raises(CmsUnavailable):
            client.submit_return(record_for(app), "key-1")
    assert sim.ledger()["returns"] == []
    ack = client.submit_return(record_for(app), "key-1")
    assert sim.ledger()["returns"][0]["ack"] == ack


def test_slow_beyond_read_timeout_then_retry_is_a_duplicate(sim: CmsSimulator) -> None:
    client = CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=0.2)
    app = client.fetch(EXAMPLE_ID_NUMBER)
    sim.inject("slow", seconds=0.5)
    with pytest.raises(CmsUnavailable) as slow:
        client.submit_return(record_for(app), "key-1")
    assert slow.value.reason == "timeout" and slow.value.retryable
    sim.clear_faults()
    # The slow CMS carried the return out after we gave up; the retry must not make a second.
    for _ in range(50):
        if sim.ledger()["returns"]:
            break
        threading.Event().wait(0.02)
    ack = client.submit_return(record_for(app), "key-1")
    assert [r["ack"] for r in sim.ledger()["returns"]] == [ack]


def test_malformed_answers_are_protocol_errors(sim: CmsSimulator, client: CmsClient) -> None:
    sim.inject("malformed")
    with pytest.raises(CmsProtocolError) as bad:
        client.fetch(EXAMPLE_ID_NUMBER)
    assert bad.value.retryable and bad.value.reason == "malformed_response"
    app = Application.from_dict(sim.ledger()["applications"][EXAMPLE_ID_NUMBER])
    with pytest.raises(CmsProtocolError):
        client.submit_return(record_for(app), "key-1")
    sim.clear_faults()
    ack = client.submit_return(record_for(app), "key-1")  # retried with the same key
    assert len(sim.ledger()["returns"]) == 1 and sim.ledger()["returns"][0]["ack"] == ack


def test_rejected_request_and_wrong_url_are_not_retryable(
    sim: CmsSimulator, client: CmsClient
) -> None:
    app = client.fetch(EXAMPLE_ID_NUMBER)
    with pytest.raises(CmsProtocolError) as rejected:
        client.submit_return(record_for(app), "")  # the CMS answers 400: empty key
    assert rejected.value.status == 400 and not rejected.value.retryable
    with pytest.raises(CmsProtocolError) as wrong:
        CmsClient(sim.base_url + "/wrong/prefix", STATION).fetch(EXAMPLE_ID_NUMBER)
    assert wrong.value.status == 404 and "CMS URL" in str(wrong.value)
    assert_masked(wrong.value, EXAMPLE_ID_NUMBER)
    with pytest.raises(ValueError):
        CmsClient("ftp://cms", STATION)


def test_one_client_many_threads(sim: CmsSimulator, client: CmsClient) -> None:
    ids = sim.samples["ready"]
    errors: list[BaseException] = []
    fetched: list[str] = []

    # Every application twice: claims first (all threads), then the same return twice at once.
    barrier = threading.Barrier(len(ids) * 2, timeout=5)

    def work(id_number: str) -> None:
        try:
            app = client.fetch(id_number)
            client.claim(id_number)
            barrier.wait()
            client.submit_return(record_for(app), f"key-{id_number}")
            fetched.append(app.id_number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(fetched) == sorted(ids * 2)
    assert len(sim.ledger()["returns"]) == len(ids)


# -- the kept connection (issue 18: a new connection per call cost each card a handshake) ----

def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = CmsClient._connection

    def counting(self: CmsClient) -> http.client.HTTPConnection:
        made.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(CmsClient, "_connection", counting)
    return made


def test_calls_from_one_thread_share_one_kept_connection(sim: CmsSimulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    made = connections_made(monkeypatch)
    client = CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=2.0)
    app = client.fetch(EXAMPLE_ID_NUMBER)
    client.claim(EXAMPLE_ID_NUMBER)
    client.submit_return(record_for(app), "key-1")
    with pytest.raises(ApplicationNotFound):  # an error answer, read whole, keeps it too
        client.fetch(UNKNOWN_ID)
    assert client.fetch(EXAMPLE_ID_NUMBER).id_number == EXAMPLE_ID_NUMBER
    assert len(made) == 1
    other = threading.Thread(target=client.fetch, args=(EXAMPLE_ID_NUMBER,), name="other")
    other.start()
    other.join()
    assert made[1:] == ["other"]  # a thread of its own, a connection of its own


def test_an_answer_that_came_too_late_is_never_read_as_the_next_one(
        sim: CmsSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    made = connections_made(monkeypatch)
    client = CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=0.2)
    client.fetch(EXAMPLE_ID_NUMBER)
    sim.inject("slow", seconds=0.5)
    with pytest.raises(CmsUnavailable) as slow:
        client.fetch(EXAMPLE_ID_NUMBER)
    assert slow.value.reason == "timeout"
    sim.clear_faults()  # the slow answer now goes out on the connection the client dropped
    with pytest.raises(ApplicationNotFound):
        client.fetch(UNKNOWN_ID)
    assert len(made) == 2


def test_a_stopped_cms_does_not_answer_on_a_kept_connection(
        sim: CmsSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept connection is dropped when the CMS goes (its close is seen before a request
    is written); the next call connects again and reaches it once it is back."""
    made = connections_made(monkeypatch)
    client = CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=2.0)
    client.fetch(EXAMPLE_ID_NUMBER)
    port = int(sim.base_url.rsplit(":", 1)[1])
    sim.stop()
    with pytest.raises(CmsUnavailable, match="refused"):
        client.fetch(EXAMPLE_ID_NUMBER)
    sim.start(port=port)
    assert client.fetch(EXAMPLE_ID_NUMBER).id_number == EXAMPLE_ID_NUMBER
    assert len(made) == 3
    client.close()  # the station's shutdown: nothing kept
    client.fetch(EXAMPLE_ID_NUMBER)
    assert len(made) == 4


# -- one kept connection per thread (personalization/http_link.py) ------------------------------

def ask(links: ConnectionPerThread) -> bool:
    """One GET /health through `links`; True when it went over a reused connection."""
    conn, reused = links.take()
    if not reused:
        conn.connect()
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    assert response.status == 200 and response.isclosed() and not response.will_close
    links.give_back(conn)
    return reused


def test_reused_while_fresh_replaced_once_idle_too_long(sim: CmsSimulator) -> None:
    url = urlsplit(sim.base_url)
    now = [0.0]
    links = ConnectionPerThread(lambda: http.client.HTTPConnection(url.hostname, url.port),
                                idle_limit=4.0, clock=lambda: now[0])
    assert [ask(links), ask(links)] == [False, True]
    now[0] += 3.9
    assert ask(links)
    now[0] += 4.0
    assert not ask(links)


def test_a_connection_the_server_closed_is_not_written_to(sim: CmsSimulator) -> None:
    url = urlsplit(sim.base_url)
    links = ConnectionPerThread(lambda: http.client.HTTPConnection(url.hostname, url.port))
    assert not ask(links)
    sim._server.cut_connections()  # as a server closes an idle connection
    assert not ask(links)
    links.close()
    assert not ask(links)


def test_kept_while_the_process_has_more_than_1024_descriptors(sim: CmsSimulator) -> None:
    """A station serving thousands of streams has descriptors past select()'s 1024: its CMS
    connection is still checked and kept."""
    import os
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"the descriptor limit ({soft}) is below 1200")
    held = [os.dup(0) for _ in range(1100)]
    try:
        url = urlsplit(sim.base_url)
        links = ConnectionPerThread(lambda: http.client.HTTPConnection(url.hostname, url.port))
        assert [ask(links), ask(links)] == [False, True]
    finally:
        for fd in held:
            os.close(fd)


def test_the_kept_connection_sends_without_delay(sim: CmsSimulator,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A POST's headers and body are two writes; on a kept connection Nagle's algorithm would
    hold the body back until the CMS acknowledges the headers (up to 40 ms)."""
    client = CmsClient(sim.base_url, STATION, connect_timeout=1.0, read_timeout=2.0)
    made: list[http.client.HTTPConnection] = []
    real = client._connection
    monkeypatch.setattr(client._links, "_factory", lambda: made.append(real()) or made[-1])
    client.claim(EXAMPLE_ID_NUMBER)
    client.claim(EXAMPLE_ID_NUMBER)
    (conn,) = made
    assert conn.sock is not None
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
