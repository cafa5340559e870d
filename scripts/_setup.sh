# Shared by scripts/demo and scripts/test: make .venv and install the project when needed.
# Sourced, not run. Honours PYTHON (default python3) and TORCH_SPEC (default the CPU pin).

PYTHON=${PYTHON:-python3}
# A bare "torch" pulls several GB of CUDA wheels; the pinned build is CPU-only and small.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
XVFB_DEBS="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libxcb-cursor0 libgl1 \
libegl1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libdbus-1-3 libfontconfig1"

say() { printf '\033[1m[napari-spines]\033[0m %s\n' "$*" >&2; }

# ensure_venv EXTRAS: create .venv if missing; install torch (pinned) and ".[EXTRAS]" once per
# change of pyproject.toml.
ensure_venv() {
  local extras=$1
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
  fi
  local hash stamp have extra covered
  hash=$(sha1sum pyproject.toml | cut -c1-12)
  stamp=".venv/.installed-${extras//,/-}-$hash"
  # an install with more extras (scripts/test's dev,qt,torch) also serves scripts/demo's qt
  for done_stamp in .venv/.installed-*-"$hash"; do
    [ -f "$done_stamp" ] || continue
    have=${done_stamp#.venv/.installed-}
    have="-${have%-"$hash"}-"
    covered=1
    for extra in ${extras//,/ }; do [[ "$have" == *"-$extra-"* ]] || covered=0; done
    [ "$covered" = 1 ] && return 0
  done
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  if [[ ",$extras," == *",torch,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
    say "installing $TORCH_SPEC (CPU build)"
    .venv/bin/pip install -q "$TORCH_SPEC"
  fi
  say "installing napari-spines[$extras] into .venv (first run takes a few minutes)"
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
}

# ensure_xvfb: install the Debian packages for Xvfb and Qt's xcb platform when some are missing.
ensure_xvfb() {
  local missing=()
  for deb in $XVFB_DEBS; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
      say "missing Debian packages: ${missing[*]}"
      say "install them with: sudo apt-get install -y ${missing[*]}"
      return 1
    fi
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
