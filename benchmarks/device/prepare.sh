#!/usr/bin/env bash
# Here, before a device call: copy the training photos and download the wheels the device machine
# lacks into folders git ignores (.device-data, .device-wheels), which run(carry=[...]) takes along.
# The device's working tree is limited to 64 MiB in all: the photos are train-bsds (29 MB) only.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.device-data/' .git/info/exclude 2>/dev/null || echo '/.device-data/' >> "$(git rev-parse --git-path info/exclude)"
grep -qx '/.device-wheels/' .git/info/exclude 2>/dev/null || echo '/.device-wheels/' >> "$(git rev-parse --git-path info/exclude)"
mkdir -p .device-data .device-wheels
cp -n "${FLOWRT_PHOTOS:-../shared/data/train-bsds}"/* .device-data/
pip download -q --only-binary=:all: --python-version 3.11 -d .device-wheels -r benchmarks/device/requirements.txt --no-deps
du -sh .device-data .device-wheels
