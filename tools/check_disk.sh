#!/usr/bin/env bash
# Fail early, with the reason, when the disk cannot hold the environment `make setup` builds.
# PyPI's Linux torch wheel is a CUDA build: with its nvidia-* and triton wheels the venv takes about 6 GB,
# and pip otherwise dies halfway with "[Errno 28] No space left on device".
# Usage: tools/check_disk.sh DIR NEEDED_GB
set -euo pipefail
dir=${1:-.}
need_gb=${2:-6}
free_kb=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
free_gb=$((free_kb / 1024 / 1024))
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "make setup: about ${need_gb} GB of free disk is needed for .venv (PyTorch with its CUDA wheels)," >&2
  echo "but the filesystem of $(cd "$dir" && pwd) has ${free_gb} GB free. Free some space and rerun." >&2
  exit 1
fi
