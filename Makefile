# cardstation: every target does the set-up it needs first and is safe to run again.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What every machine running the station needs; vpcd (the virtual reader driver) only where the
# simulators run: it lets whoever connects to its ports present a card (docs/vpcd.md).
APT_PACKAGES := swig libpcsclite-dev pcscd pcsc-tools libusb-1.0-0 fonts-wqy-zenhei chromium
SIM_APT_PACKAGES := vsmartcard-vpcd
# What only the tests need: poppler-utils renders the receipts (PDF) to PNG and reads their text
TEST_APT_PACKAGES := poppler-utils
STAMP := $(VENV)/.installed

.PHONY: setup station-setup system-packages test-packages simulator-readers no-virtual-readers \
	venv protos \
	test demo bench drill fuzz lint clean install bundle

# A development, CI or demo machine: the station with its simulators.
setup: system-packages test-packages simulator-readers venv protos

# A real station: no virtual reader. Refuses while vpcd is installed.
station-setup: no-virtual-readers system-packages venv protos

# apt packages, only those missing
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef

system-packages:
	$(call apt_install,$(APT_PACKAGES))

test-packages:
	$(call apt_install,$(TEST_APT_PACKAGES))

# vpcd and the extra vpcd reader entries: the desk reader's slots, the further printers' encoders. vpcd listens on every
# interface (it cannot be bound to loopback): `python -m cardstation.vpcd_check` reports it.
simulator-readers:
	$(call apt_install,$(SIM_APT_PACKAGES))
	@drv=/usr/lib/pcsc/drivers/serial; changed=; \
	for entry in desk:reader.conf lanes:lanes.conf; do \
	  name=$${entry%%:*}; conf=simulators/vpcd/$${entry#*:}; \
	  if ! cmp -s $$drv/libifdvpcd.so $$drv/libifdvpcd-$$name.so || \
	     ! cmp -s $$conf /etc/reader.conf.d/cardstation-vpcd-$$name; then \
	    echo "installing the $$name vpcd entry (/etc/reader.conf.d/cardstation-vpcd-$$name)"; \
	    $(SUDO) install -m 0644 $$drv/libifdvpcd.so $$drv/libifdvpcd-$$name.so; \
	    $(SUDO) install -m 0644 $$conf /etc/reader.conf.d/cardstation-vpcd-$$name; \
	    changed=1; \
	  fi; \
	done; \
	if [ -n "$$changed" ]; then \
	  echo "note: vpcd's ports 35963-35968 listen on every interface; keep this machine off" \
	       "untrusted networks, never on a station (docs/vpcd.md)"; \
	  $(SUDO) pkill -x pcscd || true; \
	fi

no-virtual-readers:
	@if dpkg-query -W -f='$${Status}' vsmartcard-vpcd 2>/dev/null | grep -q "ok installed" || \
	   [ -e /etc/reader.conf.d/cardstation-vpcd-desk ] || \
	   [ -e /etc/reader.conf.d/cardstation-vpcd-lanes ]; then \
	  echo "station-setup: a virtual reader (vpcd) is installed: anyone on the network could" \
	       "present a card to pcscd. Remove it: $(SUDO) apt-get purge vsmartcard-vpcd;" \
	       "$(SUDO) rm -f /etc/reader.conf.d/cardstation-vpcd-desk" \
	       "/etc/reader.conf.d/cardstation-vpcd-lanes" \
	       "/usr/lib/pcsc/drivers/serial/libifdvpcd-desk.so" \
	       "/usr/lib/pcsc/drivers/serial/libifdvpcd-lanes.so; restart pcscd" >&2; \
	  exit 1; \
	fi

# A station PC with the network, as root: the station in /opt/cardstation/venv (installed, not
# editable: the hardened service cannot see a checkout under /home), then `cardstation install`
# (systemd unit, the printer's udev rule, the user, pcscd's socket). No vpcd: it refuses one.
STATION_VENV := /opt/cardstation/venv
install: no-virtual-readers system-packages protos
	@[ "$$(id -u)" = 0 ] || { echo "make install: run it as root (sudo make install)" >&2; exit 1; }
	@[ -x $(STATION_VENV)/bin/python ] || python3 -m venv $(STATION_VENV)
	$(STATION_VENV)/bin/python -m pip install -q --disable-pip-version-check .
	$(STATION_VENV)/bin/cardstation install --exec $(STATION_VENV)/bin/cardstation

# The offline bundle: dist/cardstation-bundle-<version>.tar.gz (wheels, .debs, install.sh).
# Needs the network and root (apt), on Debian 12 like the stations; .debs cached in var/.
bundle: $(STAMP) protos
	$(PY) -m cardstation.install.bundle --out dist --cache var/bundle-cache

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

protos: $(STAMP)
	$(PY) -m cardstation.protogen

test: setup
	$(PY) -m cardstation.pcscd ensure
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) -m cardstation.pcscd ensure
	$(VENV)/bin/cardstation demo

# stdout carries only the JSON lines; set-up chatter goes to stderr
bench:
	@$(MAKE) --no-print-directory setup >&2
	@$(PY) -m cardstation.pcscd ensure >&2
	@$(VENV)/bin/cardstation bench

# Proof at scale (outside CI's time): `make drill KILLS=1000`, `make fuzz N=1000000`.
# stdout carries only the JSON lines, like bench; progress goes to stderr.
KILLS ?= 1000
N     ?= 1000000
drill:
	@$(MAKE) --no-print-directory setup >&2
	@$(PY) -m cardstation.pcscd ensure >&2
	@$(PY) -m cardstation.reliability.drill --kills $(KILLS) $(DRILL_ARGS)

fuzz:
	@$(MAKE) --no-print-directory setup >&2
	@$(PY) -m cardstation.reliability.fuzz --inputs $(N) $(FUZZ_ARGS)

BUF := .tools/node_modules/.bin/buf
$(BUF):
	npm install --prefix .tools --silent --no-audit --no-fund @bufbuild/buf@1.75.0

# mypy sees the folders as the installed `cardstation.*` subpackages through a tree of symlinks
# (setup.py maps folders onto subpackages, which a type checker cannot follow by itself)
TYPECHECK_TREE := .tools/typecheck
lint: $(STAMP) $(BUF) protos
	$(VENV)/bin/ruff check .
	$(BUF) lint protos
	@rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/cardstation
	@for f in cardstation/*; do ln -s "$$PWD/$$f" $(TYPECHECK_TREE)/cardstation/; done
	@for d in drivers personalization protos server console simulators; do \
	  ln -s "$$PWD/$$d" $(TYPECHECK_TREE)/cardstation/$$d; done
	cd $(TYPECHECK_TREE) && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
	  -p cardstation.drivers -p cardstation.personalization \
	  -p cardstation.server
	@command -v promtool >/dev/null || { echo "installing promtool (Debian's prometheus package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  --no-install-recommends prometheus >/dev/null; }
	promtool check rules ops/prometheus/cardstation-rules.yml

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
