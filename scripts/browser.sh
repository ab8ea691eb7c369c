#!/usr/bin/env bash
# Provide the headless browser the end-to-end tests drive (Debian's chromium).
#
# Usage:
#   scripts/browser.sh ensure   # install chromium (and fonts for readable screenshots) if missing
#   scripts/browser.sh path     # print the browser's path, exit 1 when it is not installed
#
# Playwright's own browser download cannot be used here, so the tests launch the
# distribution's chromium at $CHROMIUM_PATH (default /usr/bin/chromium). `ensure`
# is idempotent and returns at once when the browser is there. As root it installs
# with apt-get; otherwise it prints the exact command to run and exits 1.

set -euo pipefail

PROG=$(basename "$0")
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
PKGS=(chromium fonts-dejavu-core fonts-liberation)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

ensure() {
    if [[ -x $CHROMIUM_PATH ]]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "no browser at $CHROMIUM_PATH and no apt-get: install chromium with your system's package manager"
        exit 1
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "no browser at $CHROMIUM_PATH; run:"
        log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PKGS[*]}"
        exit 1
    fi
    log "installing: ${PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local opts=(-y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
    if ! apt-get install "${opts[@]}" "${PKGS[@]}" </dev/null >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -qq </dev/null >&2
        apt-get install "${opts[@]}" "${PKGS[@]}" </dev/null >&2
    fi
    if [[ ! -x $CHROMIUM_PATH ]]; then
        log "error: chromium installed but $CHROMIUM_PATH is missing"
        exit 1
    fi
}

case "${1:-}" in
    ensure) ensure ;;
    path)
        [[ -x $CHROMIUM_PATH ]] || exit 1
        printf '%s\n' "$CHROMIUM_PATH"
        ;;
    *)
        printf 'usage: %s ensure|path\n' "$PROG" >&2
        exit 2
        ;;
esac
