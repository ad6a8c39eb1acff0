#!/usr/bin/env python3
"""build_scale.py MMC MODEL OUT [MAX_S MAX_MB] — mmc build of a large model
within its time and memory (issue 20, item 8).

Runs `MMC build MODEL -o OUT` and measures the CPU seconds of mmc and the
compilers it runs (user + system, all of them: the figure the machine's
load does not change, unlike the wall clock, which is printed too) and the
largest resident set among them. Fails past MAX_S seconds (60) or MAX_MB
megabytes (2048), or if the build fails or makes no program."""
import os
import resource
import subprocess
import sys
import time


def main():
    if len(sys.argv) not in (4, 6):
        print(__doc__, file=sys.stderr)
        return 2
    mmc, model, out = sys.argv[1:4]
    max_s = float(sys.argv[4]) if len(sys.argv) == 6 else 60.0
    max_mb = float(sys.argv[5]) if len(sys.argv) == 6 else 2048.0
    t0 = time.monotonic()
    r = subprocess.run([mmc, "build", model, "-o", out])
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime
    peak_mb = ru.ru_maxrss / 1024.0  # kilobytes on Linux
    print(f"{model}: mmc build {cpu:.1f} s of CPU ({wall:.1f} s by the clock), "
          f"largest process {peak_mb:.0f} MB")
    if r.returncode != 0 or not os.access(out, os.X_OK):
        print(f"build_scale: mmc build failed (exit {r.returncode})", file=sys.stderr)
        return 1
    bad = []
    if cpu > max_s:
        bad.append(f"{cpu:.1f} s of CPU > {max_s:g} s")
    if peak_mb > max_mb:
        bad.append(f"{peak_mb:.0f} MB > {max_mb:g} MB")
    if bad:
        print("build_scale: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
