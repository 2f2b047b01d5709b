#!/usr/bin/env python3
"""`flowbus pub / sub / req / reply / agents / topics / stream` as a shell user runs them (docs/cli.md):
against a real `flowbus node`, checking what each prints and its exit code.

usage: cli_test.py /path/to/flowbus
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "monitor"))
from monitor_support import Node, check  # noqa: E402

EXE = sys.argv[1]


def run(*args, stdin=None, timeout=30):
    """(exit code, stdout, stderr) of `flowbus ARGS`"""
    p = subprocess.run([EXE, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


STARTED = []


def background(*args):
    """A command left running (killed at the end whatever happens: a failed check must not leave
    a sub or reply reconnecting forever)."""
    p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(p)
    return p


def wait_listening(proc, what):
    """A sub or reply says on stderr once its subscription is in place."""
    line = proc.stderr.readline().decode()
    check(what in line, "%s is in place (%s)" % (what.split(":")[0], line.strip()))


def main():
    node = Node(EXE)
    at = ["-s", "127.0.0.1:%d" % node.ws_port]
    try:
        # sub --json --count: exits by itself after N, printing one object each
        sub = background("sub", "cli.>", "--count", "4", "--json", *at)
        wait_listening(sub, "flowbus sub: listening on cli.>")
        rc, _, err = run("pub", "cli.one", "hello", "-n", "2", "-H", "trace=abc", "-p", "high", *at)
        check(rc == 0, "pub with a message exits 0")
        check("2 messages to cli.one" in err, "pub says what it published: " + err.strip())
        rc, _, _ = run("pub", "cli.two", *at, stdin=b"first line\nsecond line\n")
        check(rc == 0, "pub from standard input exits 0")
        out, _ = sub.communicate(timeout=20)
        check(sub.returncode == 0, "sub --count 4 exits 0 once 4 arrived")
        got = [json.loads(line) for line in out.decode().splitlines()]
        check([m["payload"] for m in got] == ["hello", "hello", "first line", "second line"],
              "sub saw every message in order: %r" % [m["payload"] for m in got])
        check(got[0]["topic"] == "cli.one" and got[0]["priority"] == "high" and got[0]["headers"] == {"trace": "abc"},
              "--json carries topic, priority and headers")
        check(got[2]["source"].startswith("flowbus-pub-") and got[2]["age_us"] >= 0, "--json carries source and age")

        # binary payloads: --json gives base64, --raw the bytes
        sub = background("sub", "cli.bin", "--count", "1", "--json", *at)
        wait_listening(sub, "flowbus sub: listening on cli.bin")
        run("pub", "cli.bin", *at, stdin=b"\xff\xfe\x00raw\n")
        out, _ = sub.communicate(timeout=20)
        m = json.loads(out)
        check(base64.b64decode(m["payload_base64"]) == b"\xff\xfe\x00raw", "a payload that is not UTF-8 comes as base64")

        # queue groups: two members share the messages, each once
        members = [background("sub", "cli.work", "--queue", "workers", "--raw", *at) for _ in range(2)]
        for mem in members:
            wait_listening(mem, "flowbus sub: listening on cli.work in group workers")
        rc, _, _ = run("pub", "cli.work", "job", "-n", "20", *at)
        check(rc == 0, "pub 20 to a queue group")
        time.sleep(1)
        outs = []
        for mem in members:
            mem.terminate()
            out, _ = mem.communicate(timeout=20)
            check(mem.returncode == 0, "sub ends with 0 on SIGTERM")
            outs.append(out.decode().splitlines())
        check(sum(len(o) for o in outs) == 20 and all(len(o) > 0 for o in outs),
              "the group's members shared the 20 messages: %s" % [len(o) for o in outs])

        # acked publishing, --rate, and the progress line of a run longer than a second
        sub = background("sub", "cli.acked", "--count", "300", "--raw", "--timeout", "30", *at)
        wait_listening(sub, "flowbus sub: listening on cli.acked")
        t0 = time.time()
        rc, _, err = run("pub", "cli.acked", "x", "-n", "300", "--rate", "200", "--acked", *at)
        took = time.time() - t0
        check(rc == 0 and "each acknowledged" in err, "pub --acked: every message confirmed")
        check(took >= 1.4, "--rate 200 paced 300 messages over %.1f s (>= 1.5 s by the schedule)" % took)
        check("flowbus pub: " in err and "/300" in err, "a progress line on a run over a second")
        out, _ = sub.communicate(timeout=30)
        check(sub.returncode == 0 and len(out.splitlines()) == 300, "all 300 acked messages arrived")

        # request/reply: a command's output, a static answer, a queue group; exit codes
        rep = background("reply", "cli.upper", "--command", "tr a-z A-Z", *at)
        wait_listening(rep, "flowbus reply: answering requests on cli.upper")
        rc, out, _ = run("req", "cli.upper", "make me loud", *at)
        check(rc == 0 and out == b"MAKE ME LOUD\n", "req gets the command's output: %r" % out)
        rc, out, _ = run("req", "cli.upper", *at, stdin=b"from stdin\n")
        check(rc == 0 and out == b"FROM STDIN\n", "req reads its payload from standard input: %r" % out)
        rep.terminate()
        rep.wait(timeout=20)
        check(rep.returncode == 0, "reply ends with 0 on SIGTERM")

        rep = background("reply", "cli.static", "pong", "--count", "1", "--id", "cli-ponger", *at)
        wait_listening(rep, "flowbus reply: answering requests on cli.static")
        rc, out, _ = run("req", "agent:cli-ponger", "ping", *at)
        check(rc == 0 and out == b"pong\n", "req to agent:ID reaches that agent: %r" % out)
        rep.wait(timeout=20)
        check(rep.returncode == 0, "reply --count 1 exits after one answer")

        rc, _, err = run("req", "cli.nobody", "x", *at)
        check(rc == 5 and "no_responders" in err, "req with no responder exits 5 (%s)" % err.strip())
        slow = background("reply", "cli.slow", "--command", "sleep 3", *at)
        wait_listening(slow, "flowbus reply: answering requests on cli.slow")
        rc, _, err = run("req", "cli.slow", "x", "--timeout", "0.5", *at)
        check(rc == 4 and "timeout" in err, "req past --timeout exits 4")
        slow.terminate()
        slow.wait(timeout=20)

        rc, _, err = run("pub", "bad..topic", "x", *at)
        check(rc == 3 and "invalid_topic" in err, "an invalid topic exits 3")
        rc, _, err = run("pub", "bad..topic", "x", "-n", "3", "--acked", *at)
        check(rc == 3 and err.count("invalid_topic") == 1 and "3 not acknowledged" in err,
              "acked too, saying it once for 3 (rc %d): %s" % (rc, err.strip()))
        rc, _, err = run("sub", "a.>.b", "--count", "1", *at)
        check(rc == 3 and "invalid_pattern" in err, "an invalid pattern exits 3")
        rc, _, err = run("pub", "cli.x", "x", "-s", "127.0.0.1:1", "--connect-timeout", "1")
        check(rc == 1 and "cannot connect" in err, "no node there exits 1")
        rc, _, err = run("pub")
        check(rc == 2, "a usage error exits 2")
        rc, _, err = run("sub", "cli.never", "--count", "1", "--timeout", "0.5", *at)
        check(rc == 4, "sub --timeout exits 4 when the messages did not come")

        # the directory and the subscriptions, from the monitoring port
        holder = background("sub", "cli.dir.*", "--queue", "g1", "--id", "cli-holder", *at)
        wait_listening(holder, "flowbus sub: listening on cli.dir.*")
        mon = node.monitor.split("://")[1]
        rc, out, _ = run("agents", "--monitor", mon)
        check(rc == 0 and b"cli-holder" in out and b"cli.dir.* g1" in out, "agents lists the agent and its subscription")
        rc, out, _ = run("agents", "--monitor", mon, "--json")
        ids = [a["id"] for a in json.loads(out)["agents"]]
        check("cli-holder" in ids, "agents --json lists it too")
        rc, out, _ = run("topics", "--monitor", mon, "--json")
        check(json.loads(out).get("cli.dir.*") == ["cli-holder (group g1)"], "topics maps the pattern to its group member")
        holder.terminate()
        holder.wait(timeout=20)
        rc, _, err = run("agents", "--monitor", "127.0.0.1:1")
        check(rc == 1 and "--monitor-port" in err, "agents without a monitoring port exits 1 and says why")
        rc, _, err = run("stream", "ls", *at)
        check(rc == 5 and "--stream-dir" in err, "stream commands on a node without --stream-dir exit 5: " + err.strip())
        with tempfile.TemporaryDirectory() as d:
            stream_checks(d)
        with tempfile.TemporaryDirectory() as d:
            streams_file_checks(d)
        bench_checks()
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.kill()
                p.wait()
        node.stop()
    print("cli: all checks passed")


def streams_file_checks(directory):
    """flowbus node --streams-file, named in the node's TOML: each stream with its own settings
    (docs/streams.md, "Configured in a file"); a wrong key stops the node, saying where."""
    streams = os.path.join(directory, "streams.toml")
    with open(streams, "w") as f:
        f.write('[[streams]]\nname = "orders"\nsubjects = ["orders.>"]\nfsync = "always"\nmax_records = 50\n\n'
                '[[streams]]\nname = "scratch"\nsubjects = ["tmp.>"]\nstorage = "memory"\n')
    config = os.path.join(directory, "node.toml")
    with open(config, "w") as f:
        f.write('[node]\nstream-dir = "%s"\nstreams-file = "%s"\n' % (os.path.join(directory, "s"), streams))
    node = Node(EXE, "--config", config)
    at = ["-s", "127.0.0.1:%d" % node.ws_port]
    try:
        rc, out, err = run("stream", "ls", "--json", *at)
        got = {s["name"]: s for s in json.loads(out)["streams"]} if rc == 0 else {}
        check(set(got) == {"orders", "scratch"} and got["orders"]["fsync"] == "always"
              and got["orders"]["storage"] == "file" and got["scratch"]["storage"] == "memory",
              "the node's TOML names a streams file; each stream has its own settings: %r %s" % (got, err))
        with open(os.path.join(directory, "s", "orders", "stream.json")) as f:
            kept = json.load(f)
        check(kept["max_records"] == 50 and kept["fsync"] == "always", "and its own retention: %r" % kept)
        rc, _, _ = run("pub", "orders.o", "x", "-n", "3", "--acked", *at)
        rc2, out, _ = run("stream", "info", "orders", "--json", *at)
        check(rc == 0 and rc2 == 0 and json.loads(out)["stream"]["records"] == 3, "it stores: %r" % out)
    finally:
        node.stop()
    rc, _, err = run("node", "--port", "0", "--stream-dir", os.path.join(directory, "s"), "--stream", "orders=x.>",
                     "--streams-file", streams)
    check(rc == 2 and "stream orders exists" in err,
          "a stream named by --stream and the file stops the node (rc %d): %s" % (rc, err.strip()))
    with open(streams, "a") as f:
        f.write('max_age = 60\n')  # max_age_s misspelt, in the second stream
    rc, _, err = run("node", "--port", "0", "--stream-dir", os.path.join(directory, "s"), "--streams-file", streams)
    check(rc == 2 and streams in err and "stream 2 (scratch): 'max_age': not a stream setting" in err,
          "a misspelt key stops the node, naming file, stream and key (rc %d): %s" % (rc, err.strip()))


def stream_checks(directory):
    """flowbus stream add / ls / info / consumer-add / view / replay / rm (docs/cli.md)."""
    node = Node(EXE, "--stream-dir", directory)
    at = ["-s", "127.0.0.1:%d" % node.ws_port]
    try:
        rc, out, _ = run("stream", "add", "jobs", "--subject", "jobs.>", "--fsync", "always", *at)
        check(rc == 0 and b"stream jobs: jobs.>, file, fsync always; 0 records" in out, "stream add: %r" % out)
        rc, _, err = run("stream", "add", "jobs", "--subject", "other.>", *at)
        check(rc == 3 and "exists" in err, "stream add with other settings exits 3: " + err.strip())
        rc, _, err = run("stream", "info", "none", *at)
        check(rc == 3 and "not_found" in err, "stream info of no stream exits 3")
        # ten records 100 ms apart, with a header
        rc, _, _ = run("pub", "jobs.a", "job", "-n", "10", "--rate", "10", "--acked", "-H", "k=v", *at)
        check(rc == 0, "pub --acked into the stream")
        rc, out, _ = run("stream", "ls", "--json", *at)
        streams = json.loads(out)["streams"]
        check(rc == 0 and streams[0]["records"] == 10 and streams[0]["last"] == 10, "stream ls --json: 10 records")
        rc, out, _ = run("stream", "view", "jobs", "--json", "--from-seq", "8", *at)
        recs = [json.loads(line) for line in out.decode().splitlines()]
        check(rc == 0 and [r["seq"] for r in recs] == [8, 9, 10], "view --from-seq 8 prints 8..10: %r" % recs)
        check(recs[0]["topic"] == "jobs.a" and recs[0]["headers"] == {"k": "v"} and recs[0]["payload"] == "job",
              "view carries topic, headers and payload")
        rc, out, _ = run("stream", "view", "jobs", "--raw", "-n", "3", *at)
        check(rc == 0 and out == b"job\njob\njob\n", "view --count 3 --raw: %r" % out)
        # replay at 2x: the 100 ms gaps come out at ~50 ms
        sub = background("sub", "again.>", "--count", "10", "--json", *at)
        wait_listening(sub, "flowbus sub: listening on again.>")
        rc, _, err = run("stream", "replay", "jobs", "--to-topic", "again.{topic}", "--speed", "2x", *at)
        check(rc == 0 and "10 records spanning" in err, "replay: " + err.strip())
        out, _ = sub.communicate(timeout=20)
        got = [json.loads(line) for line in out.decode().splitlines()]
        check(len(got) == 10 and got[0]["topic"] == "again.jobs.a", "replayed to again.{topic}")
        check(got[0]["headers"].get("replay-of") == "jobs/1" and got[0]["headers"].get("k") == "v",
              "a replayed message keeps its headers and says what it replays: %r" % got[0]["headers"])
        span = (got[-1]["timestamp_ns"] - got[0]["timestamp_ns"]) / 1e9
        check(0.35 <= span <= 1.5, "the original 0.9 s, replayed at 2x, took %.2f s (~0.45)" % span)
        # a durable consumer served by a reply (any answer acknowledges)
        rc, out, _ = run("stream", "consumer-add", "jobs", "proc", "--deliver-to", "work.jobs", *at)
        check(rc == 0 and b"consumer proc -> work.jobs: next 1" in out, "consumer-add: %r" % out)
        worker = background("reply", "work.jobs", "done", "--count", "10", *at)
        worker.wait(timeout=20)
        check(worker.returncode == 0, "the worker answered the 10 deliveries")
        time.sleep(0.3)
        rc, out, _ = run("stream", "info", "jobs", *at)
        check(rc == 0 and b"consumer proc -> work.jobs: next 11, ack floor 10, 0 pending, 10 acked" in out,
              "info shows the consumer's position: %r" % out)
        rc, _, _ = run("stream", "consumer-rm", "jobs", "proc", *at)
        check(rc == 0, "consumer-rm")
        rc, out, _ = run("stream", "rm", "jobs", *at)
        check(rc == 0 and not os.path.exists(os.path.join(directory, "jobs")), "stream rm deletes the log")
    finally:
        node.stop()


def bench_checks():
    """`flowbus bench latency --through-stream`: the stream's line and, from the same run, the
    topic's own subscriber's, which the stream's p99 is compared with (docs/benchmarks.md)."""
    rc, out, err = run("bench", "latency", "--rate", "2000", "--seconds", "1", "--through-stream", "memory", timeout=60)
    check(rc == 0, "bench latency --through-stream exits 0: " + err[-300:])
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    names = [d["bench"] for d in lines]
    check(names == ["ws_latency_2000_stream_memory_direct", "ws_latency_2000_stream_memory"],
          "one line for the direct subscriber, then the stream's: %r" % names)
    direct, stream = lines
    check(direct["received"] == direct["expected"] == 2000 and stream["received"] == stream["expected"] == 2000,
          "both got every message: %d and %d" % (direct["received"], stream["received"]))
    check(stream["direct_p99_us"] == direct["p99_us"] and direct["beside"] == stream["bench"],
          "the stream's line names the direct p99 of its run")
    check(abs(stream["p99_to_direct"] - stream["p99_us"] / direct["p99_us"]) < 0.01,
          "p99_to_direct is the ratio: %r" % stream["p99_to_direct"])
    # store: acknowledged publishes into a stream that syncs before each ACK
    rc, out, err = run("bench", "store", "--through-stream", "always", "--messages", "3000", "--in-flight", "64",
                       timeout=60)
    check(rc == 0, "bench store exits 0: " + err[-300:])
    d = json.loads(out.decode().splitlines()[-1])
    check(d["bench"] == "ws_store_acked_stream_always" and d["acked"] == 3000 and d["failed"] == 0,
          "every publish acknowledged: %r" % d)
    # 64 unconfirmed at most: no fdatasync can cover more than 64 ACKs, so at least 3000 / 64 of them
    check(3000 // 64 <= d["syncs"] <= 3000 and d["msgs_per_s"] > 0,
          "an fdatasync before each batch of ACKs (%d for 3000, at most 64 in flight)" % d["syncs"])


if __name__ == "__main__":
    main()
