import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cardstation.drivers.redaction import RedactingFormatter, mask_id_number, masked, redact, tag


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """Redaction installed the way the command line installs it, undone afterwards."""
    from cardstation.logs import install_redaction

    previous = logging.getLogRecordFactory()
    install_redaction()
    yield
    logging.setLogRecordFactory(previous)


def test_full_id_number_in_a_log_record_comes_out_masked(cli_logging, caplog) -> None:
    log = logging.getLogger("cardstation.test")
    with caplog.at_level(logging.INFO):
        log.info("fetched application for %s", "11010519491231002X")
        log.info("account 6228230029000005274 and id 110105194912310021 in text")
    assert "11010519491231002X" not in caplog.text
    assert "110105********002X" in caplog.text
    assert "622823*********5274" in caplog.text
    assert "110105********0021" in caplog.text


def test_redact_leaves_short_numbers_and_keeps_boundaries() -> None:
    assert redact("card D2143569X, phone 13812345678") == "card D2143569X, phone 13812345678"
    # glued into a longer token (e.g. a hex dump) the digits are still masked: safe side
    assert "19491231" not in redact("x11010519491231002Xy")
    assert mask_id_number("11010519491231002X") == "110105********002X"


def test_an_account_number_glued_into_a_longer_digit_run_is_masked() -> None:
    """The bank record's track 2 (tag 57) in a hex dump: 70 20 57 13 then the PAN, one run of
    27 digits that a 16-19-digit pattern lets through."""
    line = "< 702057136219991008053104646D301220 9000"
    out = redact(line)
    assert "6219991008053104646" not in out and "219991008053" not in out
    assert out.startswith("< 702057") and "4646D301220 9000" in out
    # 15 digits: a first-generation ID number
    assert "491231" not in redact("id 110105491231002")


def test_hex_of_ascii_or_utf16_digits_is_masked() -> None:
    id_ascii = b"11010519491231002X".hex().upper()
    assert b"110105194912310"[:15].hex() not in redact(id_ascii).lower()
    utf16 = "110105194912310".encode("utf-16-le").hex()
    assert redact(utf16) == "*" * len(utf16)
    assert redact("7378312E73682EC9") == "7378312E73682EC9"  # the SSSE name stays readable


def test_traceback_text_is_masked() -> None:
    log = logging.getLogger("cardstation.test")
    try:
        raise ValueError("bad holder 11010519491231002X")
    except ValueError:
        record = log.makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = RedactingFormatter().format(record)
    assert "11010519491231002X" not in out and "110105********002X" in out


def test_masked_fields_show_length_and_a_tag_that_matches_only_equal_values() -> None:
    a, b = b"\x08\x1211010519491231002X", b"\x08\x1211010519491231003X"
    assert masked("id_number", a) == f"<id_number 20 bytes #{tag(a)}>"
    assert tag(a) == tag(bytes(a)) and tag(a) != tag(b) and len(tag(a)) == 8
    assert a.hex() not in masked("id_number", a) and masked("PIN data", b"") == "<PIN data 0 bytes>"


def test_tags_are_keyed_per_process_so_a_value_cannot_be_looked_up() -> None:
    """A plain hash of a PIN could be reversed by hashing all million PINs; the tag is keyed
    by a secret drawn per process, so two processes tag the same value differently."""
    code = "from cardstation.drivers.redaction import tag; print(tag(b'123456'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(runs) == 2 and tag(b"123456") not in runs


def test_importing_the_stack_installs_nothing_on_logging() -> None:
    """Drivers, domain, server and simulators import the redaction module, not the CLI's
    logging set-up: importing them leaves the record factory and the root logger alone."""
    code = (
        "import logging\n"
        "factory = logging.getLogRecordFactory()\n"
        "import cardstation.drivers.redaction, cardstation.drivers.pcsc.transport\n"
        "import cardstation.personalization.pipeline, cardstation.personalization.window\n"
        "import cardstation.server.servicers, cardstation.simulators.cms.server\n"
        "import cardstation.commands.serve\n"
        "assert logging.getLogRecordFactory() is factory, 'record factory changed on import'\n"
        "assert not logging.getLogger().handlers, 'a root handler was added on import'\n"
        "from cardstation.logs import setup_logging\n"
        "setup_logging('DEBUG')\n"
        "assert logging.getLogRecordFactory() is not factory\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
