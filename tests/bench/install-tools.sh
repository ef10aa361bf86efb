#!/usr/bin/env bash
# Installs the benchmark tools that are missing, from Debian's packages: each argument is a
# command (wrk, nginx, valgrind). nginx-light is enough for the mock (it only uses `return`).
set -euo pipefail
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
missing=()
for cmd in "$@"; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
[ ${#missing[@]} -eq 0 ] && exit 0
$sudo apt-get update -qq
packages=()
for cmd in "${missing[@]}"; do
    if [ "$cmd" = nginx ]; then
        # nginx-light is not in every Debian release; the full nginx serves the same config.
        if apt-cache policy nginx-light | grep -q 'Candidate: [0-9]'; then cmd=nginx-light; fi
    fi
    packages+=("$cmd")
done
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
