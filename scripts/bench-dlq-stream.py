#!/usr/bin/env python3
"""scripts/bench-dlq-stream.py [--exe build/relwithdebinfo/apps/flowbus/flowbus] [--messages N]
[--payload B]: how fast a dead-letter queue read as a stream ($dlq.agent_unavailable) is caught up
by a consumer. A node with --dlq-dir gets N unicasts (B bytes each) for an agent nobody runs; once
`flowbus dlq list` has them all, `flowbus stream view '$dlq.agent_unavailable' --raw` reads them
through an ephemeral consumer (256 in flight, each acknowledged) and the time it takes gives the
catch-up rate; the same N published into a stream (`cmp`, fsync never) and read the same way, in
the same run, gives the line to compare it with. Every round of the queue's thread opens its log under the queue's flock
(docs/streams.md, "Dead-letter queues as streams"), so this is what that costs. Prints one JSON
line each. Needs the Python client (clients/python) and python3-websockets."""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import flowbus  # noqa: E402


async def dead_letter(url, n, payload):
    c = flowbus.Client(url, "bench-dlq-sender")
    await c.connect()
    body = b"x" * payload
    for i in range(n):
        c.send(flowbus.Agent("bench-dlq-nobody"), body)
        if i % 500 == 499:  # the DLQ actor's queue towards the disk is bounded: do not outrun it
            await c.flush()
            await asyncio.sleep(0.01)
        c.publish("bench.dlq.cmp", body)
    await c.flush()
    await c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "relwithdebinfo", "apps", "flowbus", "flowbus"))
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--payload", type=int, default=128)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="flowbus-bench-dlq-")
    node = subprocess.Popen([a.exe, "node", "--port", "0", "--log-level", "warn", "--dlq-dir", os.path.join(d, "dlq"),
                             "--stream-dir", os.path.join(d, "streams"), "--stream", "cmp=bench.dlq.cmp",
                             "--stream-fsync", "never"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = node.stdout.readline()
        port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
        asyncio.run(dead_letter("ws://127.0.0.1:%d/" % port, a.messages, a.payload))
        for _ in range(600):
            listed = subprocess.run([a.exe, "dlq", "list", "--dir", os.path.join(d, "dlq"), "--kind", "agent_unavailable", "--json"],
                                    capture_output=True, text=True, check=True).stdout.count("\n")
            if listed >= a.messages:
                break
            time.sleep(0.1)
        for bench, name in (("dlq_stream_catchup", "$dlq.agent_unavailable"), ("stream_view_catchup", "cmp")):
            t0 = time.perf_counter()
            out = subprocess.run([a.exe, "stream", "view", name, "--raw", "--connect", "127.0.0.1:%d" % port],
                                 capture_output=True, check=True).stdout
            took = time.perf_counter() - t0
            got = out.count(b"\n")
            print(json.dumps({"bench": bench, "messages": got, "stored": listed, "payload_bytes": a.payload,
                              "seconds": round(took, 3), "msgs_per_s": round(got / took)}), flush=True)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
