#!/usr/bin/env bash
# Smoke-test a built (or installed) studio: headless, from an empty folder, within a time limit.
#
#   packaging/smoke_test.sh                                  # dist/sampling-studio/sampling-studio
#   packaging/smoke_test.sh ~/.local/bin/studio              # any `studio` executable, e.g. from pipx
#   TIMEOUT=600 packaging/smoke_test.sh                      # seconds for each step (default 300)
#
# 1. `APP info digits`: the bundled model is inside the app and readable;
# 2. `APP sample`: a headless run writes samples.npy and PNGs;
# 3. `APP --smoke-test`: the window opens offscreen, Generate runs once, both previews get pixels.
# Exits 0 when all pass; otherwise prints what failed and exits non-zero (124 on a time-out).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="${1:-$ROOT/dist/sampling-studio/sampling-studio}"
TIMEOUT="${TIMEOUT:-300}"
if [ ! -x "$APP" ] && ! command -v "$APP" >/dev/null 2>&1; then
  echo "error: $APP is not an executable (build it with packaging/build.sh)" >&2
  exit 2
fi

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
cd "$SCRATCH"   # nothing may depend on the source tree
export QT_QPA_PLATFORM=offscreen
export HOME="$SCRATCH/home" XDG_CONFIG_HOME="$SCRATCH/home/.config"   # never the user's settings
mkdir -p "$HOME"

step() {   # step NAME COMMAND...: run it with the time limit, report, stop at the first failure
  local name="$1"; shift
  local start=$SECONDS
  timeout --kill-after=10 "$TIMEOUT" "$@" >"$SCRATCH/$name.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "error: $name took longer than $TIMEOUT s" >&2
    echo "error: $name failed (exit $rc):" >&2
    tail -n 20 "$SCRATCH/$name.log" >&2
    exit $rc
  fi
  local pick="tail -n 1"; [ "$name" = info ] && pick="head -n 1"   # info: the model's name; others: the summary
  echo "ok   $name ($((SECONDS - start)) s): $(grep -v -e '^$' -e propagateSizeHints "$SCRATCH/$name.log" | $pick)"
}

step info "$APP" info digits
step sample "$APP" sample --checkpoint digits --num-samples 4 --batch 4 --steps 10 --no-progress --out "$SCRATCH/out"
if [ ! -s "$SCRATCH/out/samples.npy" ] || ! ls "$SCRATCH/out"/*.png >/dev/null 2>&1; then
  echo "error: sample wrote no samples.npy or PNGs into $SCRATCH/out" >&2
  exit 1
fi
step window "$APP" --smoke-test --timeout "$TIMEOUT"
echo "smoke test passed: $APP"
