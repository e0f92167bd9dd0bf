#!/bin/sh
# ui-screenshots.sh: run the web UI's browser test in headless Chromium
# and keep its screenshots of every page, at a desktop and a phone-sized
# viewport, in results/ui/ (git-ignored). Needs Debian's chromium package.
set -eu
cd "$(dirname "$0")/.."
out="${1:-results/ui}"
if ! command -v chromium >/dev/null 2>&1; then
	echo "ui-screenshots: chromium is not installed (apt-get install -y chromium)" >&2
	exit 1
fi
mkdir -p "$out"
TINDERBOX_UI_SCREENSHOTS="$(cd "$out" && pwd)" ${GO:-go} test -count=1 -run '^TestUIBrowser$' ./cmd/tinderbox
ls -1 "$out"/*.png
