#!/usr/bin/env bash
# Run a command with a reachable broker: reuse one at HUB_BROKER, or start the local one and stop
# it again afterwards (only if this script started it). The command's exit code is kept.
set -uo pipefail
HUB="${HUB_BIN:-.venv/bin/hub}"
started=0
if ! "$HUB" kafka status >/dev/null 2>&1; then
  "$HUB" kafka start || exit 1
  started=1
else
  "$HUB" kafka status
fi
"$@"
rc=$?
if [ "$started" = 1 ]; then "$HUB" kafka stop; fi
exit $rc
