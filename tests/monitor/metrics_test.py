#!/usr/bin/env python3
"""/metrics, /varz and the JSON logs of a `flowbus node` under load, checked from outside: the
exposition parsed by Debian's prometheus_client (python3-prometheus-client), every family named
flowbus_*, counters ending in _total and never going back, histograms cumulative with +Inf equal
to their count, every family documented in docs/monitoring.md, /varz agreeing with /metrics, and
--log-format json writing one JSON object per line; `flowbus top --once` against it. Usage: metrics_test.py PATH/TO/flowbus"""
import asyncio
import json
import os
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from monitor_support import Node, check

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import flow_client as fc  # noqa: E402  (the protocol client written from docs/protocol.md)

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "monitoring.md")


def scrape(node):
    status, text = node.get("/metrics")
    check(status == 200, "GET /metrics answers 200")
    families = {f.name: f for f in text_string_to_metric_families(text)}  # raises on a malformed line
    return text, families


def value(families, name, labels=None):
    for f in families.values():
        for s in f.samples:
            if s.name == name and (labels is None or all(s.labels.get(k) == v for k, v in labels.items())):
                return s.value
    raise AssertionError("no sample %s %s" % (name, labels))


def check_families(families, docs):
    for name, f in families.items():
        check(name.startswith("flowbus_"), "family %s is flowbus_ prefixed" % name)
        check(f.type in ("counter", "gauge", "histogram"), "%s has a type (%s)" % (name, f.type))
        check(("`%s`" % name) in docs or ("`%s_total`" % name) in docs, "%s is listed in docs/monitoring.md" % name)
        if f.type == "counter":
            check(all(s.name.endswith("_total") for s in f.samples), "counter %s ends in _total" % name)
        if f.type == "histogram":
            series = {}
            for s in f.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {"buckets": [], "count": None, "sum": None})
                if s.name.endswith("_bucket"):
                    series[key]["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series[key]["count"] = s.value
                elif s.name.endswith("_sum"):
                    series[key]["sum"] = s.value
            for key, h in series.items():
                les = [le for le, _ in h["buckets"]]
                counts = [c for _, c in h["buckets"]]
                ok = les == sorted(les) and les[-1] == float("inf") and counts == sorted(counts) \
                    and counts[-1] == h["count"] and h["sum"] is not None
                check(ok, "histogram %s%s: cumulative, ends at +Inf == count (%s)" % (name, dict(key), h["count"]))


async def traced_publish(node):
    """protocol.md §14 from Python: an agent asks for a trace; the subscriber sees the node's hop."""
    uri = "ws://127.0.0.1:%d/" % node.ws_port
    a, b = fc.Agent(uri, "py-tr-a", subscriptions=["py.trace"]), fc.Agent(uri, "py-tr-b")
    await a.connect()
    await b.connect()
    sent = time.time_ns()
    await b.send(fc.Message(fc.PUBLISH, {"topic": "py.trace", "trace": fc.trace_hop(fc.CLIENT_SEND, sent)}, b"t"))
    m = await a.next()
    check(m.type == fc.PUBLISH and m.flags & fc.TRACED, "the subscriber gets the message with TRACED")
    hops = fc.trace_hops(m.get("trace"))
    check([k for k, _ in hops] == [fc.CLIENT_SEND, fc.NODE_IN], "its trace: client_send, then node_in")
    check(hops[0][1] == sent and sent <= hops[1][1] <= time.time_ns(), "the hops' times are the sender's and the node's")
    await a.close()
    await b.close()


def main(exe):
    with open(DOCS) as f:
        docs = f.read()
    node = Node(exe, "--log-format", "json", "--log-level", "info", "--stats-seconds", "1")
    try:
        # long enough to outlast the scrapes and `flowbus top` below under ASan on a busy machine
        # (3 s did not once: top found the bench gone)
        load = node.load(2000, 8)
        node.wait_for(lambda: node.json("/varz")["connections"] == 2, what="the bench's two connections")
        node.wait_for(lambda: node.json("/varz")["out_msgs"] > 500, what="traffic")
        _, first = scrape(node)
        check_families(first, docs)
        time.sleep(1.2)
        _, second = scrape(node)
        for name, f in second.items():
            if f.type != "counter":
                continue
            for s in f.samples:
                before = value(first, s.name, s.labels)
                check(s.value >= before, "counter %s%s does not go back (%s -> %s)" % (s.name, s.labels, before, s.value))
        check(value(second, "flowbus_messages_out_total") > value(first, "flowbus_messages_out_total"),
              "messages out grow under load")
        check(value(second, "flowbus_delivery_age_seconds_count", {"lane": "normal"}) > 0,
              "the normal lane's delivery ages are recorded")
        check(value(second, "flowbus_connections") == 2, "flowbus_connections is the bench's two")
        top = subprocess.run([exe, "top", "--once", "--monitor", node.monitor.split("://")[1]],
                             capture_output=True, text=True, timeout=30)
        check(top.returncode == 0 and "msgs/s in" in top.stdout, "flowbus top --once prints the node's figures")
        check("bench-sub-" in top.stdout and "bench-pub-" in top.stdout, "flowbus top lists the bench's connections")
        down = subprocess.run([exe, "top", "--once", "--monitor", "127.0.0.1:1"], capture_output=True, text=True, timeout=30)
        check(down.returncode == 1 and "flowbus top: 127.0.0.1:1" in down.stderr, "flowbus top says when it cannot reach a node")
        out = load.communicate(timeout=60)[0]
        result = json.loads(out.strip().splitlines()[-1])
        check(load.returncode == 0 and result["received"] == result["expected"], "the load was all delivered")

        # quiet now: /varz and /metrics agree, and the subscriber's connection counted every message
        node.wait_for(lambda: node.json("/varz")["connections"] == 0, what="the bench to leave")
        varz = node.json("/varz")
        _, third = scrape(node)
        check(value(third, "flowbus_messages_out_total") == varz["out_msgs"], "/metrics out == /varz out_msgs")
        check(value(third, "flowbus_messages_in_total") == varz["in_msgs"], "/metrics in == /varz in_msgs")
        check(varz["out_msgs"] >= result["received"], "every delivered message is counted out")
        check(value(third, "flowbus_delivery_age_seconds_count", {"lane": "normal"}) >= result["received"],
              "every delivered message has its age recorded")
        asyncio.run(traced_publish(node))
        tz = node.json("/tracez")
        mine = [t for t in tz["traces"] if t["recipient"] == "py-tr-a"]
        check(len(mine) == 1 and [h["hop"] for h in mine[0]["hops"]] == ["client_send", "node_in", "node_out"],
              "/tracez keeps the Python agent's trace with the node's write as its last hop")
        status, health = node.get("/healthz")
        check(status == 200 and health == {"status": "ok"}, "/healthz is ok")
    finally:
        err = node.stop()
    lines = [l for l in err.splitlines() if l.strip()]
    check(len(lines) >= 2, "the node logged (%d lines)" % len(lines))
    for l in lines:
        rec = json.loads(l)  # raises if a line is not JSON
        check({"time", "level", "msg"} <= rec.keys(), "log line is JSON with time, level, msg: %s" % rec["msg"][:60])
    check(any("draining" in json.loads(l)["msg"] for l in lines), "the drain is logged as JSON too")
    print("metrics_test: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
