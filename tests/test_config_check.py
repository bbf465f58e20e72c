"""What county IT runs before a station starts: `cardstation config check` lists every problem
at once with its remedy, the sample configuration for a real station is valid, `cardstation
token create` makes a login token, and the CMS is reached over mutual TLS with a bearer token
when the configuration says so."""

from __future__ import annotations

import json
import ssl
import stat

import pytest

from cardstation.cli import main
from cardstation.config_check import check_file
from cardstation.personalization.cms import CmsClient
from cardstation.personalization.ports.cms import CmsNotAuthorized, CmsSettings, CmsUnavailable
from cardstation.server.auth.identity import Role
from cardstation.server.auth.tokens import TokenStore
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.simulators.cms.server import CmsSimulator
from tests.support.certs import TestCA


def test_every_problem_is_listed_at_once(tmp_path) -> None:
    key = tmp_path / "server.key"
    key.write_text("not really a key")
    key.chmod(0o644)
    (tmp_path / "server.crt").write_text("x")
    config = tmp_path / "cardstation.toml"
    config.write_text(f"""
[station]
data_dir = "{tmp_path / 'data'}"
colour = "blue"
[cms]
kind = "province-x"
url = "http://10.1.2.3:8600"
read_timeout = "ten"
[server]
listen = "0.0.0.0:50051"
tls_cert = "{tmp_path / 'server.crt'}"
tls_key = "{key}"
[keys]
test_keys = true
""")
    problems = [str(p) for p in check_file(config)]
    text = "\n".join(problems)
    for expected in ("unknown key(s) ['colour']", "read_timeout must be float",
                     "kind 'province-x' is not known", "plain HTTP to another machine",
                     "server.key is readable by other users", "chmod 600",
                     "nobody can log in", "TEST keys"):
        assert expected in text, (expected, problems)
    assert len(problems) >= 7  # one line each, not only the first
    assert main(["config", "check", "--config", str(config)]) == 1


def test_the_sample_for_a_real_station_has_no_problem_of_its_own(tmp_path, capsys) -> None:
    assert main(["config", "sample"]) == 0
    sample = tmp_path / "cardstation.toml"
    sample.write_text(capsys.readouterr().out)
    problems = [str(p) for p in check_file(sample)]
    # only what a fresh PC lacks: the files and devices it names
    assert problems and all("does not exist" in p for p in problems), problems


def test_a_clean_configuration_passes(tmp_path, capsys) -> None:
    tokens = tmp_path / "tokens.json"
    assert main(["token", "create", "--name", "window-1", "--role", "operator",
                 "--file", str(tokens)]) == 0
    capsys.readouterr()
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[server]\ntokens_file = "{tokens}"\n')
    assert check_file(config) == []
    assert main(["config", "check", "--config", str(config)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_token_create_prints_the_token_once_and_keeps_only_its_hash(tmp_path, capsys) -> None:
    tokens = tmp_path / "etc" / "tokens.json"
    assert main(["token", "create", "--name", "window-1", "--role", "operator",
                 "--expires", "30d", "--file", str(tokens)]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert token not in tokens.read_text()
    identity = TokenStore.load(tokens).authenticate(token)
    assert (identity.name, identity.role) == ("window-1", Role.OPERATOR)
    (entry,) = json.loads(tokens.read_text())["tokens"]
    assert 29 * 86400 < entry["expires_at"] - __import__("time").time() <= 30 * 86400
    assert main(["token", "list", "--file", str(tokens)]) == 0
    listed = capsys.readouterr().out
    assert "window-1\toperator" in listed and token not in listed
    assert main(["token", "revoke", "--name", "window-1", "--file", str(tokens)]) == 0
    assert TokenStore.load(tokens).entries == ()
    with pytest.raises(SystemExit):
        main(["token", "create", "--name", "x", "--role", "operator", "--expires", "soon",
              "--file", str(tokens)])
    assert "not a duration" in capsys.readouterr().err


@pytest.fixture
def tls_cms(tmp_path):
    ca = TestCA(tmp_path / "pki")
    server = ca.server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_file))
    context.load_cert_chain(str(server.cert), str(server.key))
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the station must show its certificate
    sim = CmsSimulator(seed=1)
    url = sim.start(tls=context, token="station-token-1")
    yield sim, url, ca
    sim.stop()


def test_the_cms_over_mutual_tls_with_a_bearer_token(tls_cms) -> None:
    _, url, ca = tls_cms
    assert url.startswith("https://127.0.0.1:")
    station = ca.client("410700-W01")
    settings = CmsSettings(url, "410700-W01", tls_ca=str(ca.cert_file),
                           tls_cert=str(station.cert), tls_key=str(station.key),
                           token="station-token-1")
    assert CmsClient.from_settings(settings).fetch(EXAMPLE_ID_NUMBER).id_number == \
        EXAMPLE_ID_NUMBER
    # the wrong token: refused, in the port's words
    with pytest.raises(CmsNotAuthorized) as refused:
        CmsClient.from_settings(CmsSettings(url, "410700-W01", tls_ca=str(ca.cert_file),
                                            tls_cert=str(station.cert),
                                            tls_key=str(station.key), token="guess")
                                ).fetch(EXAMPLE_ID_NUMBER)
    assert refused.value.code == "CMS_NOT_AUTHORIZED" and "token_file" in str(refused.value)
    # no client certificate: the handshake fails, named as such
    with pytest.raises(CmsUnavailable) as no_cert:
        CmsClient.from_settings(CmsSettings(url, "410700-W01", tls_ca=str(ca.cert_file),
                                            token="station-token-1")).fetch(EXAMPLE_ID_NUMBER)
    assert "TLS" in str(no_cert.value) or "closed" in str(no_cert.value)
    # a CMS certificate the station does not trust
    other = TestCA(ca.folder / "other", name="someone else")
    with pytest.raises(CmsUnavailable) as untrusted:
        CmsClient.from_settings(CmsSettings(url, "410700-W01", tls_ca=str(other.cert_file),
                                            tls_cert=str(station.cert),
                                            tls_key=str(station.key))).fetch(EXAMPLE_ID_NUMBER)
    assert "not trusted" in str(untrusted.value) and "tls_ca" in str(untrusted.value)
    assert "station-token-1" not in str(refused.value) + str(no_cert.value)
