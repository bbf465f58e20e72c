import logging

from cardstation.logs import mask_id_number, redact


def test_full_id_number_in_a_log_record_comes_out_masked(caplog) -> None:
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


def test_traceback_text_is_masked(caplog) -> None:
    log = logging.getLogger("cardstation.test")
    from cardstation.logs import RedactingFormatter

    try:
        raise ValueError("bad holder 11010519491231002X")
    except ValueError:
        record = log.makeRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__(
            "sys").exc_info())
    out = RedactingFormatter().format(record)
    assert "11010519491231002X" not in out and "110105********002X" in out
