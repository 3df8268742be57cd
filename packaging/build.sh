#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller: dist/sampling-studio/sampling-studio.
#
#   packaging/build.sh                 # a build venv in build/pyinstaller-venv (created on first use)
#   packaging/build.sh --current-env   # the Python on PATH (installs pyinstaller into it if missing)
#
# Environment: PYTHON (python3) creates the build venv; TORCH_SPEC (torch==2.13.0, the CPU build this project
# pins in its README) is installed into it first so pip does not pull a multi-gigabyte CUDA build;
# DIST (dist/) and WORK (build/pyinstaller/) are PyInstaller's output and scratch folders.
# Then run packaging/smoke_test.sh to check the result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/build/pyinstaller-venv"
DIST="${DIST:-$ROOT/dist}"
WORK="${WORK:-$ROOT/build/pyinstaller}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

case "${1:-}" in
  --current-env) PY="$(command -v python || command -v python3)" ;;
  "")
    if [ ! -x "$VENV/bin/python" ]; then
      echo "creating the build venv $VENV"
      "${PYTHON:-python3}" -m venv "$VENV"
      "$VENV/bin/python" -m pip install --quiet --upgrade pip
      "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
    fi
    PY="$VENV/bin/python"
    # the studio's dependencies and pyinstaller, read from pyproject.toml; not the studio itself (the spec takes
    # it from this source tree, so nothing is built from the tree)
    "$PY" -c "import tomllib" 2>/dev/null || "$PY" -m pip install --quiet tomli
    mapfile -t DEPS < <("$PY" -c '
import sys
try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["packaging"]))
' "$ROOT/pyproject.toml")
    "$PY" -m pip install --quiet "${DEPS[@]}"
    ;;
  *) echo "usage: $0 [--current-env]" >&2; exit 2 ;;
esac

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  "$PY" -m pip install --quiet "pyinstaller>=6"
fi

echo "building with $("$PY" -m PyInstaller --version) on $("$PY" --version)"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" "$ROOT/packaging/studio.spec"
seconds=$(( $(date +%s) - start ))

APP="$DIST/sampling-studio"
echo "built $APP/sampling-studio in ${seconds} s ($(du -sh "$APP" | cut -f1))"
echo "check it: packaging/smoke_test.sh $APP/sampling-studio"
