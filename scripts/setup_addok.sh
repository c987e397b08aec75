#!/usr/bin/env bash
# Optional: a self-hosted addok (the BAN's engine) for tests/addok, in its own environment
# (.addok/) so that its pins (redis 5, pydocket) never touch the project's lock.
# Needs Redis from Debian: apt-get install redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
export UV_PYTHON_DOWNLOADS=never
$UV venv --quiet --allow-existing --python 3.11 .addok
# 1.2.1: the last addok that accepts per-row CSV filters (1.3.x answers 500 to them).
$UV pip install --quiet --python .addok/bin/python \
  "addok==1.2.1" "addok-fr==1.1.0" "addok-france==1.2.0" "addok-csv==1.1.0"
.addok/bin/addok --help >/dev/null 2>&1
echo "addok ready in .addok/bin/addok"
