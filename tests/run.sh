#!/usr/bin/env bash
# Install what the tests need, then run them. The README's test command and .ci/run both call this.
# Debian packages: installed with apt-get where we are root and apt exists; elsewhere the tests that need them
# skip with the install line (and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(dataset-fashion-mnist openssh-server openssh-client passwd python3.11 python3-venv qemu-user-static debootstrap)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "not root or no apt-get: skipping Debian packages (${DEBIAN_PACKAGES[*]}); tests needing them will skip"
fi

python3 -m pip install -q -e '.[test]'
# pytest exits 5 when it collects nothing: that is a failure here too.
export TF_ENABLE_ONEDNN_OPTS=0  # the strictest CPU kernels, as on ARM boards: no CPU can hide a kernel gap
# One worker per core, whole files per worker (module fixtures built once): 573 s -> 389 s on 2 cores.
python3 -m pytest -q -n auto --dist loadfile --durations=15 "$@"
