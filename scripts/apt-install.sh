#!/bin/sh
# Install the Debian packages named as arguments when they are missing.
# As root (or with passwordless sudo) it installs them; otherwise it says what to run.
missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: not a Debian system; please install the equivalents of:$missing" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo"; else
  echo "warning: missing Debian packages:$missing" >&2
  echo "         install them with: sudo apt-get install$missing" >&2
  exit 0
fi
echo "Installing Debian packages:$missing"
$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq$missing >/dev/null
