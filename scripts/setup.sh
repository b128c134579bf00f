#!/usr/bin/env bash
# Installs what building and testing guestgate needs on a Debian/Ubuntu machine with Rust
# (and nginx and valgrind, for the load script):
# cmake (pingora's zlib-ng build), redis-server (Redis-backed tests), wrk, curl and bc
# (demo and load runs), python3 (a lax upstream in the smuggling suite), Chromium and
# chromedriver (the real-browser tests), Node.js and npm (axe-core for those tests, jose
# to verify the scope assertion the way an app would).
# Safe to run repeatedly: only what is missing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# valgrind: `scripts/load.sh --instructions` counts instructions per request
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
# nginx: the reference column of scripts/load.sh (a proxy_pass with keepalive)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# axe-core (accessibility checks) and jose (the app-side assertion verifier), at the
# versions the lockfile pins.
if [ ! -f tests/node/node_modules/axe-core/axe.min.js ] || [ ! -f tests/node/node_modules/jose/package.json ]; then
  echo "setup: installing the Node test tools (npm ci)"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
