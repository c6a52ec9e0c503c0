#!/usr/bin/env bash
# Set up (first run only) and generate a track with the default backend.
#   scripts/generate.sh ["prompt"] [seconds]
# Prints the path of the WAV file. Needs python3 (3.10+); no GPU and no model download.
source "$(dirname "$0")/bootstrap.sh"
install ""
PROMPT="${1:-lofi hip hop, jazzy piano, vinyl crackle}"
SECONDS_WANTED="${2:-30}"
exec "$VENV/bin/lofi" generate "$PROMPT" --duration "$SECONDS_WANTED"
