"""APDU transports: one base class that does T=0 response handling, concrete links below it.

`ApduTransport.transmit` returns (data, SW) after fetching 61xx responses with GET RESPONSE and
re-issuing a case-2 command once with the Le a 6Cxx names. Subclasses implement `_exchange`, a
single raw command/response on the wire. `PcscTransport` goes through pyscard and pcscd;
`InProcessTransport` calls a card object directly (fast unit tests, same T=0 handling).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from smartcard import scard

from cardstation.drivers import tally

from .atr import protocols_from_atr
from .errors import CardRemoved, NoCard, UnresponsiveCard, pcsc_error, raise_for_sw
from .trace import ApduTrace

GET_RESPONSE = bytes.fromhex("00C00000")
WireObserver = Callable[[bytes, bytes], None]


class ApduTransport(ABC):
    """A connection to one card. Subclasses provide connect/disconnect/_exchange."""

    reader: str = ""

    def __init__(self) -> None:
        self.atr: bytes = b""
        self.observers: list[WireObserver] = []  # see every raw (command, response) pair
        self._trace = ApduTrace(self.reader)

    @abstractmethod
    def connect(self) -> bytes:
        """Power the card and return its ATR."""

    @abstractmethod
    def disconnect(self, unpower: bool = True) -> None: ...

    def close(self) -> None:
        """Disconnect and give back whatever the transport holds (a PC/SC context). Call it
        when done: pcscd serves a client only so many contexts (200 in pcsc-lite 1.9)."""
        self.disconnect()

    @abstractmethod
    def _exchange(self, apdu: bytes) -> bytes:
        """Send one command APDU, return the raw response (data + SW1 SW2)."""

    def _wire(self, apdu: bytes) -> tuple[bytes, int]:
        self._trace.command(apdu)  # always: the trace follows the selection, logs at DEBUG
        response = self._exchange(apdu)
        for observer in self.observers:
            observer(apdu, response)
        if not response:  # the reader lost the card mid-exchange (vpcd reports it so)
            raise CardRemoved(
                "the command did not complete: the card was removed or stopped answering",
                reader=self.reader,
            )
        if len(response) < 2:
            raise CardRemoved(
                f"the card answered {len(response)} byte and no status word: it moved, or the "
                "chip contacts are dirty",
                reader=self.reader,
            )
        data, sw = response[:-2], (response[-2] << 8) | response[-1]
        tally.APDUS.add(tally.sw_class(sw))
        self._trace.response(data, sw)
        return data, sw

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send `apdu`; return (data, SW) with T=0 61xx/6Cxx handled here, once."""
        data, sw = self._wire(apdu)
        if sw >> 8 == 0x6C and len(apdu) == 5:  # case 2 with the wrong Le: re-issue once
            data, sw = self._wire(apdu[:4] + bytes([sw & 0xFF]))
        collected = bytearray(data)
        while sw >> 8 == 0x61:
            data, sw = self._wire(GET_RESPONSE + bytes([sw & 0xFF]))
            collected += data
        return bytes(collected), sw

    def command(self, apdu: bytes, what: str = "") -> bytes:
        """Transmit and raise the typed error for any SW but 9000; return the data."""
        data, sw = self.transmit(apdu)
        raise_for_sw(sw, what, self.reader)
        return data

    def __enter__(self) -> ApduTransport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcscTransport(ApduTransport):
    """A card in a PC/SC reader, through pyscard's thin winscard binding."""

    def __init__(self, reader: str, context: int | None = None, exclusive: bool = False) -> None:
        self.reader = reader
        super().__init__()
        self._own_context = context is None
        if context is None:
            rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if rv != scard.SCARD_S_SUCCESS:
                raise pcsc_error(rv, "cannot reach the PC/SC service")
        self._context = context
        self._share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        self._card: int | None = None
        self._protocol = scard.SCARD_PROTOCOL_T0
        self._pci = scard.SCARD_PCI_T0

    def reader_state(self) -> tuple[int, bytes]:
        """(event state flags, ATR) of the reader right now."""
        rv, states = scard.SCardGetStatusChange(
            self._context, 0, [(self.reader, scard.SCARD_STATE_UNAWARE)]
        )
        if rv not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise pcsc_error(rv, "reading the reader state", self.reader)
        _, flags, atr = states[0]
        return flags, bytes(atr)

    def connect(self) -> bytes:
        flags, atr = self.reader_state()
        if flags & scard.SCARD_STATE_EMPTY:
            raise pcsc_error(0x8010000C, "connecting to the card", self.reader)
        if flags & scard.SCARD_STATE_MUTE:
            raise pcsc_error(0x80100066, "powering the chip", self.reader)
        wanted = protocols_from_atr(atr) if atr else {0, 1}
        proto = 0
        if 0 in wanted:
            proto |= scard.SCARD_PROTOCOL_T0
        if 1 in wanted:
            proto |= scard.SCARD_PROTOCOL_T1
        rv, card, active = scard.SCardConnect(self._context, self.reader, self._share, proto)
        if rv != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rv, "connecting to the card", self.reader)
        self._card, self._protocol = card, active
        self._pci = active  # pyscard takes the protocol constant as the PCI selector
        rv, _, _, _, atr_now = scard.SCardStatus(card)
        self.atr = bytes(atr_now) if rv == scard.SCARD_S_SUCCESS else atr
        return self.atr

    def disconnect(self, unpower: bool = True) -> None:
        if self._card is not None:
            disposition = scard.SCARD_UNPOWER_CARD if unpower else scard.SCARD_LEAVE_CARD
            scard.SCardDisconnect(self._card, disposition)
            self._card = None

    def close(self) -> None:
        self.disconnect()
        if self._own_context:
            scard.SCardReleaseContext(self._context)
            self._own_context = False

    @property
    def protocol(self) -> str:
        return "T=1" if self._protocol == scard.SCARD_PROTOCOL_T1 else "T=0"

    def _exchange(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise NoCard("the station is not connected to the card (program error: connect() "
                         "first)", reader=self.reader,
                         remedy="read the card again; report this to the station supplier")
        rv, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        if rv != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rv, "sending a command to the card", self.reader)
        return bytes(response)


class CardLike(Protocol):
    """Anything that answers APDUs like a card: the simulators' cards satisfy it."""

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def process_apdu(self, apdu: bytes) -> bytes: ...


class InProcessTransport(ApduTransport):
    """Talks to a card object in this process: no pcscd, same T=0 handling and trace."""

    def __init__(self, card: CardLike | None, reader: str = "in-process") -> None:
        self.reader = reader
        super().__init__()
        self.card = card
        self._powered = False

    def connect(self) -> bytes:
        if self.card is None:
            raise NoCard("no card in the reader", code=0x8010000C, reader=self.reader)
        atr = self.card.power_on()
        if not atr or len(atr) > 33:
            raise UnresponsiveCard(
                "no answer to reset: the card is in the wrong way round, or its chip is dirty "
                "or damaged",
                reader=self.reader,
            )
        self.atr = atr
        self._powered = True
        return atr

    def disconnect(self, unpower: bool = True) -> None:
        if self._powered and self.card is not None and unpower:
            self.card.power_off()
        self._powered = False

    def _exchange(self, apdu: bytes) -> bytes:
        if self.card is None:
            raise CardRemoved("the card was removed during the operation", code=0x80100069,
                              reader=self.reader)
        if not self._powered:
            raise NoCard("the station is not connected to the card (program error: connect() "
                         "first)", reader=self.reader,
                         remedy="read the card again; report this to the station supplier")
        return self.card.process_apdu(apdu)
