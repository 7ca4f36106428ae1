#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are installed for the browser test
# (tests/e2e/test_browser_chat.py): Debian's `chromium` + `chromium-driver`.
# As root (CI) it installs them with apt-get when missing; otherwise it prints how to, and the
# browser test skips (it fails as root or with CI set, where installing is possible).
set -euo pipefail

CHROMIUM="${CHROMIUM_BINARY:-/usr/bin/chromium}"
CHROMEDRIVER="${CHROMEDRIVER_BINARY:-/usr/bin/chromedriver}"

have_browser() { [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; }

if have_browser; then
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "ensure-browser: installing chromium and chromium-driver" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium chromium-driver >&2
  have_browser || { echo "ensure-browser: chromium/chromedriver still missing after apt-get" >&2; exit 1; }
  exit 0
fi

echo "ensure-browser: headless Chromium not found ($CHROMIUM, $CHROMEDRIVER)." >&2
echo "  Install it with: sudo apt-get install chromium chromium-driver" >&2
echo "  (or set CHROMIUM_BINARY / CHROMEDRIVER_BINARY). The browser test will be skipped." >&2
exit 0
