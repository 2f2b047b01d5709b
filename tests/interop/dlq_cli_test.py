#!/usr/bin/env python3
"""`flowbus dlq` end to end: a node with --dlq-dir dead-letters unicasts to an absent agent; the
entries are on disk after the node stops, survive a restart, list as JSON, replay over WebSocket to
the agent once it is there (and leave the file), and purge. Usage: dlq_cli_test.py PATH/TO/flowbus"""
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import flow_client as fc
import interop_test
from interop_test import check


def start_node(exe, dlq_dir):
    p, uri = interop_test.start_node(exe, "--dlq-dir", dlq_dir)
    return p, int(uri.rsplit(":", 1)[1].rstrip("/"))


def stop_node(p):
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "the node drains and exits 0")


def dlq(exe, *args):
    r = subprocess.run([exe, "dlq", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("flowbus dlq %s failed: %s %s" % (args, r.stdout, r.stderr))
    return r.stdout


def listed(exe, d, kind="agent_unavailable"):
    out = dlq(exe, "list", "--dir", d, "--kind", kind, "--json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def send_to_absent(port):
    a = fc.Agent("ws://127.0.0.1:%d/" % port, "py-sender")
    await a.connect()
    for i in range(4):
        await a.send(fc.Message(fc.TASK_ASSIGNMENT, {"target": "py-late"}, b"task %d" % i))
    await a.close()


async def receive_replay(exe, d, port):
    late = fc.Agent("ws://127.0.0.1:%d/" % port, "py-late")
    await late.connect()
    entries = listed(exe, d)
    ids = [str(e["id"]) for e in entries[:3]]
    out = await asyncio.get_running_loop().run_in_executor(
        None, lambda: dlq(exe, "replay", "--dir", d, "--connect", "127.0.0.1:%d" % port,
                          "--kind", "agent_unavailable", "--id", *ids))
    check("replayed 3, failed 0" in out, "dlq replay sends the three chosen entries: " + out.strip())
    got = []
    for _ in range(3):
        m = await late.next()
        got.append(m.payload)
    check(got == [b"task 0", b"task 1", b"task 2"], "the agent receives them, in order, with their payloads")
    await late.close()


def read_as_stream(exe, port):
    """The queues are streams of the node's API (docs/streams.md): `flowbus stream ls` lists them,
    `flowbus stream view` prints their entries with why each died."""
    at = ("--connect", "127.0.0.1:%d" % port)
    r = subprocess.run([exe, "stream", "ls", *at], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and "stream $dlq.agent_unavailable: dead letters (agent_unavailable)" in r.stdout
          and "4 records (1..4)" in r.stdout, "stream ls lists the queue with its 4 entries: " + r.stdout.strip())
    r = subprocess.run([exe, "stream", "rm", "$dlq.agent_unavailable", *at], capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "dead-letter queue" in r.stderr, "stream rm refuses a queue: " + r.stderr.strip())
    r = subprocess.run([exe, "stream", "view", "$dlq.agent_unavailable", "--json", *at],
                       capture_output=True, text=True, timeout=60)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    check(r.returncode == 0 and [row["payload"] for row in rows] == ["task %d" % i for i in range(4)],
          "stream view prints the 4 entries' payloads, in order: " + r.stdout.strip() + r.stderr.strip())
    check(all(row["headers"]["dlq-reason"] == "agent_unavailable" and row["headers"]["dlq-recipient"] == "py-late"
              and row["headers"]["dlq-type"] == "TASK_ASSIGNMENT" for row in rows),
          "each with its reason, recipient and type in the dlq-* headers")
    asyncio.run(replay_as_stream(exe, port))


async def replay_as_stream(exe, port):
    """`flowbus stream replay` of a queue: to a fixed topic every entry goes; with {topic}, entries
    sent to an agent have no topic to put there and are skipped, said, exit code 3."""
    at = ("--connect", "127.0.0.1:%d" % port)
    watcher = fc.Agent("ws://127.0.0.1:%d/" % port, "py-dbg", subscriptions=("dbg.>",))
    await watcher.connect()
    loop = asyncio.get_running_loop()

    def replay(to):
        return subprocess.run([exe, "stream", "replay", "$dlq.agent_unavailable", "--to-topic", to, "--speed", "max", *at],
                              capture_output=True, text=True, timeout=60)
    r = await loop.run_in_executor(None, lambda: replay("dbg.dead"))
    check(r.returncode == 0 and "4 records" in r.stderr, "stream replay to a fixed topic replays 4: " + r.stderr.strip())
    got = [(await watcher.next()).payload for _ in range(4)]
    check(got == [b"task %d" % i for i in range(4)], "the watcher gets the 4 payloads in order: %r" % got)
    r = await loop.run_in_executor(None, lambda: replay("dbg.{topic}"))
    check(r.returncode == 3 and "4 records skipped" in r.stderr and "record 1 was sent to an agent" in r.stderr,
          "with {topic}, the 4 entries sent to an agent are skipped and said (rc %d): %s" % (r.returncode, r.stderr.strip()))
    await watcher.close()


def disk_full_and_bad_dir(exe, d):
    """Issue 17.2: dead letters the disk refuses are said in the stop line and make the exit code 1
    (they were reported as persisted, rc 0); an unusable --dlq-dir refuses to start."""
    full = os.path.join(d, "full")
    os.mkdir(full)

    def no_room():  # a full disk for the node: RLIMIT_FSIZE 0 (writes fail with EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    p = subprocess.Popen([exe, "node", "--port", "0", "--log-level", "off", "--dlq-dir", full],
                         stdout=subprocess.PIPE, text=True, preexec_fn=no_room)
    line = p.stdout.readline()
    port = int(line.split("ws://")[1].split()[0].rsplit(":", 1)[1])
    asyncio.run(send_to_absent(port))
    p.send_signal(signal.SIGTERM)
    out = p.stdout.read()
    rc = p.wait(timeout=30)
    check("(4 NOT persisted)" in out, "the stop line says 4 dead letters were not persisted: " + out.strip())
    check(rc == 1, "and the node exits 1 (rc %d)" % rc)

    plain = os.path.join(d, "a-file")
    open(plain, "w").close()
    r = subprocess.run([exe, "node", "--port", "0", "--dlq-dir", plain], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "DLQ directory unusable" in r.stderr and plain in r.stderr,
          "a --dlq-dir that is a file refuses to start, naming it: " + r.stderr.strip())


def main(exe):
    d = tempfile.mkdtemp(prefix="flowbus-dlq-cli-")
    node = None
    try:
        disk_full_and_bad_dir(exe, d)
        node, port = start_node(exe, d)
        asyncio.run(send_to_absent(port))
        stop_node(node)
        entries = listed(exe, d)
        check(len(entries) == 4, "4 dead letters on disk after the node stopped")
        check(all(e["recipient"] == "py-late" and e["source"] == "py-sender" and e["reason"] == "agent_unavailable"
                  for e in entries), "each keeps recipient, source and reason")
        check(listed(exe, d, "poison") == [], "the other queues are empty")

        node, port = start_node(exe, d)  # a restart keeps them
        check(len(listed(exe, d)) == 4, "still 4 after a restart")
        read_as_stream(exe, port)
        asyncio.run(receive_replay(exe, d, port))
        left = listed(exe, d)
        check(len(left) == 1, "the replayed entries left the queue, one remains")
        dlq(exe, "purge", "--dir", d, "--kind", "agent_unavailable")
        check(listed(exe, d) == [], "purge empties it")
        stop_node(node)
    finally:
        if node is not None and node.poll() is None:  # a failed check: not left holding the test's pipes
            node.kill()
            node.wait()
        shutil.rmtree(d, ignore_errors=True)
    print("dlq cli: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
