#!/usr/bin/env bash
# Install what the end-to-end suite (tests/e2e) needs, non-interactively and idempotently:
#   - Debian's chromium (used by Playwright through executable_path; never `playwright install`)
#   - Debian's openssl command line (tests/e2e/test_tls.py makes its certificates with it)
#   - Debian's nginx (tests/e2e/test_nginx.py runs its own nginx process in front of plotwire;
#     the system service is never started)
#   - the pinned Python packages of tests/e2e/requirements.txt
# Only the package registries are used (apt repositories, PyPI).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/tests/e2e/requirements.txt"
python="${PYTHON:-python3}"

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

updated=""
apt_install() {
    if [ -z "$updated" ]; then
        echo "+ apt-get update"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
        updated=1
    fi
    echo "+ apt-get install -y --no-install-recommends $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
else
    echo "chromium: /usr/bin/chromium missing, installing the Debian package"
    apt_install chromium
fi

if [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($(/usr/sbin/nginx -v 2>&1 | head -n1))"
else
    echo "nginx: /usr/sbin/nginx missing, installing the Debian package (its service is not started)"
    # A policy-rc.d that answers 101 keeps the package's scripts from starting the
    # system nginx on port 80; it is removed again if this script put it there.
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        apt_install nginx
    else
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        trap '$sudo rm -f "$policy"' EXIT
        apt_install nginx
        $sudo rm -f "$policy"
        trap - EXIT
    fi
fi

if command -v openssl >/dev/null; then
    echo "openssl: already installed ($(openssl version))"
else
    echo "openssl: missing, installing the Debian package"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl
fi

echo "python packages: $python -m pip install -q -r $req"
"$python" -m pip install -q --disable-pip-version-check -r "$req"

echo "done:"
"$python" - <<'PY'
import importlib.metadata as md
for name in ("bokeh", "numpy", "pytest", "playwright", "tornado"):
    print(f"  {name} {md.version(name)}")
PY
echo "  $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
echo "  $(/usr/sbin/nginx -v 2>&1 | head -n1)"
echo "run: E2E_SERVER=bokeh $python -m pytest tests/e2e -q    (reference server)"
echo "     $python -m pytest tests/e2e -q                      (plotwire; PLOTWIRE_BIN to override the binary)"
