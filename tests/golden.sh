#!/bin/sh
# golden.sh — run one error case and compare mmc's diagnostics with its golden file.
#
#   golden.sh MMC CASE.mmnet
#
# Runs `NO_COLOR=1 MMC check CASE.mmnet` from the case's directory (so the
# paths in the messages are relative, as in the .err files), requires exit
# status 1 (a user error: a crash, an abort or a sanitizer report exits
# otherwise, and 0 means the bad input was accepted), and compares stderr
# with CASE.err. Exits 0 on a match; otherwise prints the difference and
# exits 1. With MMNET_BLESS=1 it writes CASE.err from the output instead
# (the exit status must still be 1).
set -u

if [ $# -ne 2 ]; then
    echo "usage: golden.sh MMC CASE.mmnet" >&2
    exit 2
fi

mmc=$1
case_path=$2

# An absolute path to mmc, since we change directory.
case $mmc in
    /*) ;;
    */*) mmc=$(cd "$(dirname "$mmc")" && pwd)/$(basename "$mmc") ;;
    *) mmc=$(command -v "$mmc" || echo "$mmc") ;;
esac
if [ ! -x "$mmc" ]; then
    echo "golden.sh: '$2': mmc '$1' is not an executable" >&2
    exit 1
fi

dir=$(dirname "$case_path")
file=$(basename "$case_path")
name=${file%.mmnet}
if [ "$name" = "$file" ]; then
    echo "golden.sh: '$case_path' is not a .mmnet file" >&2
    exit 1
fi
cd "$dir" || exit 1
if [ ! -f "$file" ]; then
    echo "golden.sh: no such case: $case_path" >&2
    exit 1
fi

tmp=$(mktemp "${TMPDIR:-/tmp}/golden.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT HUP INT TERM

# ASan and UBSan exit with status 1 by default, like a reported error: give
# them their own status so that a sanitizer report is never taken for one.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=66" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=67" \
NO_COLOR=1 "$mmc" check "$file" 2>"$tmp" >/dev/null
status=$?

if [ "$status" -ne 1 ]; then
    if [ "$status" -eq 0 ]; then
        echo "FAIL $case_path: mmc accepted the input (exit 0); expected an error (exit 1)"
    else
        echo "FAIL $case_path: mmc exited with status $status; expected 1 (a reported error, not a crash)"
    fi
    echo "--- stderr:"
    cat "$tmp"
    exit 1
fi

if [ "${MMNET_BLESS:-0}" = 1 ]; then
    cp "$tmp" "$name.err" || exit 1
    echo "blessed $dir/$name.err"
    exit 0
fi

if [ ! -f "$name.err" ]; then
    echo "FAIL $case_path: no golden file $name.err (run with MMNET_BLESS=1 to create it)"
    echo "--- stderr:"
    cat "$tmp"
    exit 1
fi

if diff -u "$name.err" "$tmp" >"$tmp.diff" 2>&1; then
    rm -f "$tmp.diff"
    exit 0
fi
echo "FAIL $case_path: the diagnostics differ from $name.err (- expected, + actual)"
cat "$tmp.diff"
rm -f "$tmp.diff"
exit 1
