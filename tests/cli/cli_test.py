#!/usr/bin/env python3
"""`flowbus pub / sub / req / reply / agents / topics` as a shell user runs them (docs/cli.md):
against a real `flowbus node`, checking what each prints and its exit code.

usage: cli_test.py /path/to/flowbus
"""
import base64
import json
import os
import subprocess
import sys
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
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.kill()
                p.wait()
        node.stop()
    print("cli: all checks passed")


if __name__ == "__main__":
    main()
