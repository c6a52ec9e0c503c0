# Sourced by the other scripts: make (or reuse) the project venv and install into it.
#   LOFI_VENV   where the venv lives (default: .venv in the repo)
#   LOFI_PYTHON the interpreter to build it with (default: python3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOFI_VENV:-$ROOT/.venv}"
PY="${LOFI_PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "lofi: creating virtualenv in $VENV" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
fi

# install EXTRAS: pip-install the package (editable) with the given extras, pinned by constraints.
install() {
  local extras="$1"
  local spec="$ROOT"
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$ROOT/scripts/constraints.txt" -e "$spec" >&2
}

# system_packages PKG...: Debian packages the tests need. Installed with apt-get when running as
# root (CI, containers); otherwise only named, since the tests that need them say so themselves.
system_packages() {
  local missing=()
  for pkg in "$@"; do command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "lofi: installing ${missing[*]} (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
  else
    echo "lofi: ${missing[*]} not found; install it (e.g. sudo apt-get install ${missing[*]}) for the playback tests" >&2
  fi
}
