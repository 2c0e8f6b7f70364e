#!/usr/bin/env bash
# Installs the Debian packages the project builds with, only those that are missing.
set -euo pipefail
packages=(cmake g++ ninja-build libgtest-dev libopenblas-dev libstb-dev nlohmann-json3-dev
          libcli11-dev libtomlplusplus-dev zlib1g-dev libturbojpeg0-dev libeigen3-dev dataset-fashion-mnist
          clang libclang-rt-14-dev)  # clang and libFuzzer: the fuzz targets (scripts/fuzz.sh)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "== installing: ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
