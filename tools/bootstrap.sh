#!/usr/bin/env bash
# Installs the Debian packages meshd builds and tests with (DESIGN.md section 2)
# when any is missing. Idempotent; runs as root with no input. Nothing is
# downloaded from anywhere but Debian's archive.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libcaf-dev            # actors and remoting (CAF 0.17.6)
  libsodium-dev         # ed25519, X25519, sealed boxes, MACs
  capnproto libcapnp-dev  # wire and snapshot format
  libxxhash-dev         # XXH3-64 checksums and origin hashes
  catch2                # unit tests
  libspdlog-dev         # logs
  libcli11-dev          # command-line parsing
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all packages present"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
