#!/usr/bin/env bash
# Validate the Prometheus config and the hub's rules, and run the rule unit tests.
# Needs promtool (Debian: apt-get install -y --no-install-recommends prometheus).
# Set PROMTOOL to use another binary. Exits non-zero on the first failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
promtool="${PROMTOOL:-promtool}"
if ! command -v "$promtool" >/dev/null 2>&1; then
    echo "check.sh: promtool not found (apt-get install -y --no-install-recommends prometheus)" >&2
    exit 127
fi

cd "$here"
shopt -s nullglob
rules=(rules/*.yml)
tests=(tests/*.test.yml)
if (( ${#rules[@]} == 0 || ${#tests[@]} == 0 )); then
    echo "check.sh: no rule files or no rule tests under $here" >&2
    exit 1
fi

echo "== promtool check config prometheus.yml"
"$promtool" check config prometheus.yml
echo "== promtool check rules ${rules[*]}"
"$promtool" check rules "${rules[@]}"
echo "== promtool test rules ${tests[*]}"
"$promtool" test rules "${tests[@]}"
echo "== prometheus checks passed"
