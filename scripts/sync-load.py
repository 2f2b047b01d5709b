#!/usr/bin/env python3
"""scripts/sync-load.py [--dir D] [--bytes N] [--interval-ms M] [--seconds S]: a disk load like a
`group` stream's, with no flowbus in it: append N bytes to a file and fdatasync it every M ms, for
S seconds (defaults: 25 600 bytes every 5 ms, a `group` stream's share of 10 000 msgs/s of
128-byte payloads). Prints one JSON line: how long each fdatasync took. Run beside
`flowbus bench latency` to see what the disk's work costs a path that never touches the disk
(docs/benchmarks.md, "Streams at 10 000 msgs/s: measured in the same run")."""
import argparse
import json
import os
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--bytes", type=int, default=25600)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=6.0)
    a = ap.parse_args()
    fd, path = tempfile.mkstemp(prefix="flowbus-sync-load-", dir=a.dir)
    chunk = b"x" * a.bytes
    took = []
    try:
        end = time.monotonic() + a.seconds
        nxt = time.monotonic()
        while time.monotonic() < end:
            os.write(fd, chunk)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - t0) * 1e6)
            nxt += a.interval_ms / 1e3
            time.sleep(max(0.0, nxt - time.monotonic()))
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    pct = lambda q: round(took[min(len(took) - 1, int(q * len(took)))], 1)
    print(json.dumps({"bench": "fdatasync_%dB_every_%gms" % (a.bytes, a.interval_ms), "syncs": len(took),
                      "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99), "max_us": round(took[-1], 1)}),
          flush=True)


if __name__ == "__main__":
    main()
