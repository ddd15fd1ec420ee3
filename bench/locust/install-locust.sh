#!/usr/bin/env bash
# Installs the Locust scenarios' Python environment into bench/.cache/locust-venv from
# bench/locust/requirements.txt, once: a stamp holds the requirements' sha256, so the venv is
# rebuilt only when they change. Prints the locust binary's path on stdout (everything else
# goes to stderr). Needs python3 (3.11 or newer) with the venv module, and PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/requirements.txt"
venv="${LANTERN_LOCUST_VENV:-$(cd "$here/.." && pwd)/.cache/locust-venv}"
stamp="$venv/.requirements.sha256"

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install-locust: $python not found; install Python 3.11+ (Debian: apt-get install -y python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "install-locust: $("$python" --version 2>&1) is too old; Locust 2.47 needs Python 3.11+" >&2
  exit 1
fi

# Two runs starting at once (parallel tests) must not build the venv over each other.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/locust" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/locust"
  exit 0
fi

echo "install-locust: building $venv from $requirements" >&2
rm -rf "$venv"
if ! "$python" -m venv "$venv" >&2; then
  echo "install-locust: '$python -m venv' failed; install the venv module (Debian: apt-get install -y python3-venv)" >&2
  rm -rf "$venv"
  exit 1
fi
# A failed install leaves no stamp, so the next call starts over.
"$venv/bin/pip" install --disable-pip-version-check --quiet --requirement "$requirements" >&2
echo "$want" > "$stamp"
echo "$venv/bin/locust"
