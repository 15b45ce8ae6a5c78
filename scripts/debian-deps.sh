#!/usr/bin/env bash
# Install the Debian packages whose program is missing: debian-deps.sh [--soft] "WHY" package=/path/to/program ...
# Says what it installs before it does (sudo when not root). --soft: a failed install is reported, not fatal.
set -uo pipefail
soft=0
if [ "${1:-}" = --soft ]; then soft=1; shift; fi
why=$1; shift
missing=""
for pair in "$@"; do
  test -x "${pair#*=}" || missing="$missing ${pair%%=*}"
done
[ -z "$missing" ] && exit 0
echo "$why$missing"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing; then
  exit 0
fi
if [ "$soft" = 1 ]; then
  echo "Could not install$missing: the demo runs without its SSH node or without real container roots"
  exit 0
fi
exit 1
