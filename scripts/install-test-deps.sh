#!/usr/bin/env bash
# Install what the end-to-end suite (tests/e2e) needs, non-interactively and idempotently:
#   - Debian's chromium (used by Playwright through executable_path; never `playwright install`)
#   - Debian's openssl command line (tests/e2e/test_tls.py makes its certificates with it)
#   - the pinned Python packages of tests/e2e/requirements.txt
# Only the package registries are used (apt repositories, PyPI).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/tests/e2e/requirements.txt"
python="${PYTHON:-python3}"

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
else
    echo "chromium: /usr/bin/chromium missing, installing the Debian package"
    echo "+ apt-get update"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    echo "+ apt-get install -y --no-install-recommends chromium"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
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
echo "run: E2E_SERVER=bokeh $python -m pytest tests/e2e -q    (reference server)"
echo "     $python -m pytest tests/e2e -q                      (plotwire; PLOTWIRE_BIN to override the binary)"
