#!/bin/sh
# install-deps.sh — install, from Debian's packages, what building, training
# and testing mmnet needs (only what is missing; uses sudo when not root).
# The CUDA toolkit (nvcc) is optional: when it is on PATH, the CUDA back end
# is built and its generated code is compiled by the tests.
#   tools/install-deps.sh          what building and training need
#   tools/install-deps.sh --test   and what the test suite also uses: Graphviz
#                                  (renders mmc dump-ir --dot) and Chromium
#                                  (renders prog report's page, headless)
set -e
pkgs="cmake make pkg-config clang llvm flex bison zlib1g-dev libcjson-dev libomp-dev dataset-fashion-mnist python3
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
      libspng-dev libturbojpeg0-dev openmpi-bin libopenmpi-dev"
[ "${1:-}" = --test ] && pkgs="$pkgs graphviz chromium"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing > /dev/null
