#!/usr/bin/env python3
"""The Python client's throughput and latency, measured as `flowbus bench` measures the C++ one
(docs/benchmarks.md, "Clients"): one JSON line per result.

  bench.py throughput URL [--messages N] [--size B]   1->1: a publisher and a subscriber connection
  bench.py latency URL [--rate R] [--seconds S] [--size B]

Latency is offered at a fixed rate: message i is due at t0 + i/R, carries that intended time, and
is measured from it to its arrival (no coordinated omission: a late sender is counted late). The
subscriber is a second process (as `flowbus bench` runs three: node, publisher, subscriber); both
read the host's monotonic clock."""
import argparse
import asyncio
import json
import multiprocessing
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowbus  # noqa: E402


def percentiles(samples_ns):
    s = sorted(samples_ns)
    q = lambda x: s[min(len(s) - 1, int(x * len(s)))] / 1e3  # noqa: E731
    return {"p50_us": q(0.50), "p90_us": q(0.90), "p95_us": q(0.95), "p99_us": q(0.99), "max_us": s[-1] / 1e3}


async def connected(url, agent_id, **kw):
    return await flowbus.Client(url, agent_id, "bench", **kw).connect()


def subscriber(url, topic, count, ready, results, latency):
    """The subscribing process: reports the arrival times (throughput) or the latencies it saw."""
    async def run():
        sub = await connected(url, "py-bench-sub-%d" % os.getpid(), receive_window=4096)
        samples, done = [], asyncio.get_running_loop().create_future()

        def on(m):
            now = time.monotonic_ns()
            samples.append(now - struct.unpack_from("<Q", m.payload)[0] if latency else now)
            if len(samples) == count and not done.done():
                done.set_result(None)

        await sub.subscribe(topic, on)
        ready.set()
        seen = -1
        try:
            while not done.done() and len(samples) != seen:  # until all came, or 5 s brought none
                seen = len(samples)
                await asyncio.wait([done], timeout=5)
        finally:
            results.put(samples if latency else [samples[0], samples[-1], len(samples)] if samples else [0, 0, 0])
            await sub.close()
    asyncio.run(run())


def start_subscriber(a, topic, count, latency):
    ctx = multiprocessing.get_context("fork")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=subscriber, args=(a.url, topic, count, ready, results, latency), daemon=True)
    proc.start()
    if not ready.wait(30):
        raise SystemExit("bench: the subscriber did not connect")
    return proc, results


async def throughput(a):
    proc, results = start_subscriber(a, "bench.py.tp", a.messages, False)
    pub = await connected(a.url, "py-bench-pub-%d" % os.getpid())
    payload = b"x" * a.size
    t0 = time.monotonic_ns()
    for i in range(a.messages):
        if len(pub._queue) > 20000:  # a publisher as fast as its writer, not a growing queue
            await pub.flush()
        pub.publish("bench.py.tp", struct.pack("<Q", time.monotonic_ns()) + payload[8:])
    await pub.flush()
    first, last, got = await asyncio.get_running_loop().run_in_executor(None, results.get)
    proc.join()
    print(json.dumps({"bench": a.name or "py_pubsub_1to1", "client": "python", "payload_bytes": a.size,
                      "messages": a.messages, "received": got, "msgs_per_s": round(got / ((last - t0) / 1e9)),
                      "writes": pub.stats.writes, "batches": pub.stats.batches}), flush=True)
    await pub.close()


async def latency(a):
    count = int(a.rate * a.seconds)
    proc, results = start_subscriber(a, "bench.py.lat", count, True)
    pub = await connected(a.url, "py-bench-lpub-%d" % os.getpid())
    pad = b"p" * max(0, a.size - 8)
    period = 1e9 / a.rate
    t0 = time.monotonic_ns() + 10_000_000
    i = 0
    while i < count:
        now = time.monotonic_ns()
        due = t0 + int(i * period)
        if now < due:
            await asyncio.sleep((due - now) / 1e9)
            continue
        while i < count and t0 + int(i * period) <= now:  # every message due by now, each with its own time
            pub.publish("bench.py.lat", struct.pack("<Q", t0 + int(i * period)) + pad)
            i += 1
    samples = await asyncio.get_running_loop().run_in_executor(None, results.get)
    proc.join()
    print(json.dumps({"bench": a.name or "py_latency_%dk" % (a.rate // 1000), "client": "python",
                      "payload_bytes": a.size, "offered_per_s": a.rate, "count": len(samples),
                      **{k: round(v, 1) for k, v in percentiles(samples).items()}}), flush=True)
    await pub.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["throughput", "latency"])
    ap.add_argument("url")
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--name")
    a = ap.parse_args()
    asyncio.run(throughput(a) if a.scenario == "throughput" else latency(a))


if __name__ == "__main__":
    main()
