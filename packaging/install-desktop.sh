#!/usr/bin/env bash
# Put Sampling Studio into the desktop's application menu for this user (freedesktop: GNOME, KDE, Xfce, ...).
#
#   packaging/install-desktop.sh                       # Exec=sampling-studio (on PATH, e.g. from pipx)
#   packaging/install-desktop.sh --exec "$PWD/dist/sampling-studio/sampling-studio"   # the PyInstaller app
#   packaging/install-desktop.sh --uninstall
#
# Installs into ${XDG_DATA_HOME:-~/.local/share}: applications/APP_ID.desktop, metainfo/APP_ID.metainfo.xml,
# icons/hicolor/NxN/apps/sampling-studio.png and icons/hicolor/scalable/apps/sampling-studio.svg.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_ID="io.github.sampling_studio.SamplingStudio"
ICON=sampling-studio
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
EXEC=""
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exec) EXEC="${2:?--exec needs a path}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

SIZES="16 32 48 64 128 256 512"
if [ $UNINSTALL -eq 1 ]; then
  rm -f "$DATA/applications/$APP_ID.desktop" "$DATA/metainfo/$APP_ID.metainfo.xml" \
        "$DATA/icons/hicolor/scalable/apps/$ICON.svg"
  for n in $SIZES; do rm -f "$DATA/icons/hicolor/${n}x${n}/apps/$ICON.png"; done
  echo "removed Sampling Studio from $DATA"
else
  install -d "$DATA/applications" "$DATA/metainfo" "$DATA/icons/hicolor/scalable/apps"
  if [ -n "$EXEC" ]; then   # an absolute path: the menu entry works without the app on PATH
    case "$EXEC" in /*) ;; *) EXEC="$(cd "$(dirname "$EXEC")" && pwd)/$(basename "$EXEC")" ;; esac
    [ -x "$EXEC" ] || { echo "error: $EXEC is not an executable" >&2; exit 2; }
    case "$EXEC" in *[\"\`\$\\\|\&%]*) echo "error: put the app in a folder whose path has none of \" \` \$ \\ | & %" >&2; exit 2 ;; esac
    # Exec: a quoted argument (the path may hold spaces); TryExec: the plain path
    sed -e "s|^Exec=sampling-studio|Exec=\"$EXEC\"|" -e "s|^TryExec=sampling-studio|TryExec=$EXEC|" \
      "$ROOT/packaging/$APP_ID.desktop" > "$DATA/applications/$APP_ID.desktop"
  else
    install -m 644 "$ROOT/packaging/$APP_ID.desktop" "$DATA/applications/$APP_ID.desktop"
  fi
  install -m 644 "$ROOT/packaging/$APP_ID.metainfo.xml" "$DATA/metainfo/$APP_ID.metainfo.xml"
  install -m 644 "$ROOT/resources/icons/$ICON.svg" "$DATA/icons/hicolor/scalable/apps/$ICON.svg"
  for n in $SIZES; do
    install -D -m 644 "$ROOT/resources/icons/$ICON-$n.png" "$DATA/icons/hicolor/${n}x${n}/apps/$ICON.png"
  done
  echo "installed Sampling Studio into $DATA (applications/$APP_ID.desktop, metainfo, icons/hicolor)"
fi
# tell menus and icon themes to look again (desktops also rescan on their own at the next login)
touch "$DATA/icons/hicolor" 2>/dev/null || true
if command -v update-desktop-database >/dev/null; then update-desktop-database -q "$DATA/applications" || true; fi
