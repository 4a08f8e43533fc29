#!/usr/bin/env bash
# Install headless Chromium for tests/test_browser_gallery.py (Debian/Ubuntu package `chromium`).
# Idempotent: returns at once when a chromium binary is already on PATH. Needs root (or passwordless sudo) and apt;
# where neither is available it says so and exits 0, and the browser test skips itself.
set -euo pipefail

for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "install_chromium: $bin already installed ($(command -v "$bin"))"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: apt-get not found; install Chromium by hand to run the browser gallery test" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_chromium: not root and no passwordless sudo; run 'apt-get install -y chromium' as root" >&2
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists are refreshed only when the package is unknown (fresh container without lists).
if ! apt-cache show chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq chromium >/dev/null
echo "install_chromium: installed $(chromium --version 2>/dev/null || echo chromium)"
