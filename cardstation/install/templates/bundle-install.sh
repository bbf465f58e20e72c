#!/bin/sh
# Install cardstation ${version} from this offline bundle: no network is used.
# Run as root from the unpacked folder:   sudo ./install.sh
#   --prefix DIR   where the virtual environment goes (default /opt/cardstation)
#   --no-debs      the system packages are installed already (skip dpkg)
#   --root DIR     lay the service files down in a staging root; create no user, enable nothing
# Safe to run again: packages installed at the same or a newer version are left alone, pip
# finds cardstation installed, and `cardstation install` rewrites nothing that is unchanged.
set -eu
here=$$(cd "$$(dirname "$$0")" && pwd)
prefix=/opt/cardstation
debs=yes
root=""
while [ $$# -gt 0 ]; do
  case "$$1" in
    --prefix) prefix=$$2; shift 2 ;;
    --no-debs) debs=no; shift ;;
    --root) root=$$2; shift 2 ;;
    *) echo "install.sh: unknown option $$1 (options: --prefix DIR, --no-debs, --root DIR)" >&2
       exit 2 ;;
  esac
done
if [ "$$(id -u)" != 0 ]; then
  echo "install.sh: run it as root (sudo ./install.sh): it installs packages and a service" >&2
  exit 1
fi
arch=$$(dpkg --print-architecture)
if [ "$$arch" != "${arch}" ]; then
  echo "install.sh: this bundle is for ${arch} Debian 12, this PC is $$arch; build one on a" \
       "$$arch Debian 12 machine with 'make bundle'" >&2
  exit 1
fi

if [ "$$debs" = yes ]; then
  # Only packages missing here or older: dpkg -i of an older .deb would downgrade one.
  set --
  for deb in "$$here"/debs/*.deb; do
    pkg=$$(dpkg-deb -f "$$deb" Package)
    ver=$$(dpkg-deb -f "$$deb" Version)
    have=$$(dpkg-query -W -f='$${Status} $${Version}' "$$pkg" 2>/dev/null || true)
    case "$$have" in
      "install ok installed "*)
        if dpkg --compare-versions "$${have##* }" ge "$$ver"; then continue; fi ;;
    esac
    set -- "$$@" "$$deb"
  done
  if [ $$# -gt 0 ]; then
    echo "installing $$# package(s) from $$here/debs"
    dpkg -i "$$@"
  fi
fi

# Debian's own Python (the one python3-venv is for), whatever else is first on PATH
python=/usr/bin/python3
if ! "$$python" -c 'import sys; sys.exit(sys.version_info[:2] != (${python_tuple}))'; then
  echo "install.sh: the wheels are for Python ${python}, $$python here is another version;" \
       "build the bundle on a machine with the station's Debian release" >&2
  exit 1
fi
[ -x "$$prefix/venv/bin/python" ] || "$$python" -m venv "$$prefix/venv"
"$$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$$here/wheels" "cardstation==${version}"
echo "installed $$("$$prefix/venv/bin/cardstation" --version) in $$prefix/venv"
if [ -n "$$root" ]; then
  "$$prefix/venv/bin/cardstation" install --exec "$$prefix/venv/bin/cardstation" --root "$$root"
else
  "$$prefix/venv/bin/cardstation" install --exec "$$prefix/venv/bin/cardstation"
fi
