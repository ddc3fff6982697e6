#!/usr/bin/env bash
# Installs what moebench needs on Debian 12 (as root; idempotent) and builds it
# into build/. CUDA is used when nvcc is found (MOEBENCH_CUDA=OFF to skip it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(build-essential cmake ninja-build git libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin libpmix-dev
          libicu-dev libsentencepiece-dev sentencepiece slurm-wlm munge python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ -z "${CUDACXX:-}" && -x /usr/local/cuda/bin/nvcc ]]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEBENCH_CUDA="${MOEBENCH_CUDA:-AUTO}" >/dev/null
cmake --build "$root/build" -j "$(nproc)"
