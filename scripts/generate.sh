#!/usr/bin/env bash
# Set up (first run only), generate a track with the default backend, and play it.
#   scripts/generate.sh ["prompt"] [seconds]
# Prints the path of the WAV file, then plays it (looping, Ctrl-C stops) when this machine
# has an audio output, and says so plainly when it has none. LOFI_NO_PLAY=1: only generate.
# Needs python3 (3.10+); no GPU and no model download.
source "$(dirname "$0")/bootstrap.sh"
install ""
PROMPT="${1:-lofi hip hop, jazzy piano, vinyl crackle}"
SECONDS_WANTED="${2:-30}"
TRACK="$("$VENV/bin/lofi" generate "$PROMPT" --duration "$SECONDS_WANTED")" || exit $?
echo "$TRACK"
[ -n "${LOFI_NO_PLAY:-}" ] && exit 0
echo "lofi: playing it, looping (Ctrl-C stops)" >&2
rc=0
"$VENV/bin/lofi" play "$TRACK" || rc=$?   # (bootstrap sets -e: keep the status instead of exiting)
case $rc in
  0|130) exit 0 ;;
  2|3) echo "lofi: no audio output here, so nothing plays (see the reason above); the track is at $TRACK" >&2
       exit 0 ;;
  *) exit $rc ;;
esac
