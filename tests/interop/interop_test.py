#!/usr/bin/env python3
"""Interop: Python agents (flow_client.py, written from docs/protocol.md alone) against a real
`flowbus node` process. Usage: interop_test.py PATH/TO/flowbus"""
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile

import websockets

import flow_client as fc


def start_node(exe, *extra):
    """A `flowbus node` on a free port (extra: more node flags); returns (process, ws:// or wss:// URI)."""
    p = subprocess.Popen([exe, "node", "--port", "0", "--log-level", "warn", *extra], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "://" not in line:
        p.kill()
        raise SystemExit("the node did not start: %r" % line)
    scheme = "wss" if "wss://" in line else "ws"
    port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
    return p, "%s://127.0.0.1:%d/" % (scheme, port)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  ", what)


async def scenario(uri):
    # registration with subscriptions and capabilities in REGISTER
    a = fc.Agent(uri, "py-a", subscriptions=["interop.a.>"], capabilities=["shout"])
    welcome = await a.connect()
    check(welcome.get("target") == "py-a", "WELCOME names the agent")
    b = fc.Agent(uri, "py-b")
    await b.connect()

    # SUBSCRIBE answered by ACK with our message_id; a bad pattern by NACK 96+7
    await b.send(fc.Message(fc.SUBSCRIBE, {"topic": "interop.b.*", "message_id": 7}))
    ack = await b.next()
    check(ack.type == fc.ACK and ack.get("message_id") == 7, "SUBSCRIBE -> ACK(7)")
    await b.send(fc.Message(fc.SUBSCRIBE, {"topic": "bad..pattern", "message_id": 8}))
    nack = await b.next()
    check(nack.type == fc.NACK and nack.get("message_id") == 8 and nack.get("error_code") == 96 + 7,
          "a bad pattern -> NACK(8, invalid pattern)")
    await b.send(fc.Message(fc.SUBSCRIBE, {"topic": "interop.svc", "message_id": 9}))
    check((await b.next()).type == fc.ACK, "SUBSCRIBE interop.svc -> ACK")

    # publish both ways; the topic is pooled (defined once, then referenced: 2 bytes)
    for i in range(3):
        await a.publish("interop.b.news", b"hello %d" % i)
    for i in range(3):
        m = await b.next()
        check(m.type == fc.PUBLISH and m.get("topic") == "interop.b.news" and m.get("source") == "py-a"
              and m.payload == b"hello %d" % i, "b receives publish %d from a" % i)
    await b.publish("interop.a.x.y", b"back")
    m = await a.next()
    check(m.get("topic") == "interop.a.x.y" and m.payload == b"back", "a receives on a REGISTER subscription (>)")

    # application headers travel as they came (protocol.md §12), the key pooled by the sender
    for trace in ("4bf92f35", "00f067aa"):
        await b.publish("interop.a.traced", b"t", header=[("trace-id", trace), ("tenant", "acme")])
        m = await a.next()
        check(m.get("header") == [("trace-id", trace), ("tenant", "acme")],
              "a receives b's headers (%s), in order" % trace)

    # unicast to an agent id and to a capability
    await b.send(fc.Message(fc.COORDINATION, {"target": "py-a"}, b"direct"))
    m = await a.next()
    check(m.type == fc.COORDINATION and m.payload == b"direct" and m.get("source") == "py-b", "unicast by target")
    await b.send(fc.Message(fc.TASK_ASSIGNMENT, {"capability": ["shout"]}, b"job"))
    m = await a.next()
    check(m.type == fc.TASK_ASSIGNMENT and m.payload == b"job", "routing by capability")

    # request / reply across two Python agents
    await a.send(fc.Message(fc.REQUEST, {"topic": "interop.svc", "correlation_id": 42}, b"ping"))
    req = await b.next()
    check(req.type == fc.REQUEST and req.get("reply_to") == "py-a" and req.get("correlation_id") == 42,
          "b receives the REQUEST with reply_to and correlation_id")
    await b.send(fc.Message(fc.REPLY, {"target": req.get("reply_to"), "correlation_id": 42}, b"pong"))
    rep = await a.next()
    check(rep.type == fc.REPLY and rep.get("correlation_id") == 42 and rep.payload == b"pong", "a gets the REPLY")
    await a.send(fc.Message(fc.REQUEST, {"topic": "nobody.listens", "correlation_id": 43}, b"?"))
    err = await a.next()
    check(err.type == fc.ERROR and err.get("correlation_id") == 43 and err.get("error_code") == 96 + 3,
          "a REQUEST nobody takes -> ERROR(no responders), connection open")

    # a BATCH from the node: several messages waiting go out together
    for i in range(50):
        await b.publish("interop.a.burst", b"%d" % i)
    got = [await a.next() for _ in range(50)]
    check([m.payload for m in got] == [b"%d" % i for i in range(50)], "50 messages in order (BATCHes unwrapped)")

    # HEARTBEAT is accepted silently; broadcast reaches the others
    await a.send(fc.Message(fc.HEARTBEAT))
    await a.send(fc.Message(fc.COORDINATION, {}, b"all hands", flags=fc.BROADCAST))
    m = await b.next()
    check(m.payload == b"all hands", "broadcast")

    # a receive window: the node writes 4 data messages ahead of our CREDITs, then waits for them
    w = fc.Agent(uri, "py-w", subscriptions=["interop.w"], window=4)
    await w.connect()
    for i in range(10):
        await b.publish("interop.w", b"%d" % i)
    got = [await w.next() for _ in range(4)]
    try:
        await w.next(timeout=0.3)
        check(False, "nothing beyond the window")
    except asyncio.TimeoutError:
        check([m.payload for m in got] == [b"0", b"1", b"2", b"3"], "4 messages, then nothing: the window")
    await w.send(fc.Message(fc.CREDIT, {"credit": 4}))  # the 4 handled
    got = [await w.next() for _ in range(4)]
    await w.send(fc.Message(fc.CREDIT, {"credit": 4}))
    got += [await w.next() for _ in range(2)]
    check([m.payload for m in got] == [b"%d" % i for i in range(4, 10)], "CREDIT 4, CREDIT 4 -> the other 6, in order")
    await w.close()

    # a defective frame closes that connection with ERROR + 1002; the others keep working
    bad = fc.Agent(uri, "py-bad")
    await bad.connect()
    frame = bytearray(bad.enc.encode(fc.Message(fc.PUBLISH, {"topic": "interop.b.x"}, b"x")))
    frame[-1] ^= 1
    await bad.send_raw(bytes(frame))
    err = await bad.next()
    check(err.type == fc.ERROR and err.get("error_code") == 11 and err.get("header"), "bad checksum -> ERROR(11) with a reason")
    try:
        await bad.next()
        check(False, "the connection closes")
    except websockets.ConnectionClosed as e:
        check(e.rcvd is not None and e.rcvd.code == 1002, "closed with 1002")
    await a.publish("interop.b.after", b"still here")
    m = await b.next()
    check(m.payload == b"still here", "the other agents are unaffected")

    await a.close()
    await b.close()


async def shm_scenario(uri):
    # protocol.md §13: an agent on the node's host asks for shared memory; its frames go through
    # the rings both ways, and a plain WebSocket agent talks with it as with any other
    s = fc.ShmAgent(uri, "py-shm")
    welcome = await s.connect()
    check(welcome.get("target") == "py-shm", "shared memory: WELCOME arrives through the node's ring")
    await s.send(fc.Message(fc.SUBSCRIBE, {"topic": "interop.shm.>", "message_id": 5}))
    ack = await s.next()
    check(ack.type == fc.ACK and ack.get("message_id") == 5, "shared memory: SUBSCRIBE through our ring, ACK through the node's")
    w = fc.Agent(uri, "py-ws", subscriptions=["interop.ws.>"])
    await w.connect()
    # 3 000 x 600 bytes: the node's 1 MiB ring fills (it waits for space: we ring it as we read)
    # and wraps (a padding record at its end)
    payloads = [(b"%d:" % i).ljust(600, b".") for i in range(3000)]
    for p in payloads:
        await w.publish("interop.shm.n", p)
    got = [await s.next() for _ in range(3000)]
    check([m.payload for m in got] == payloads, "shared memory: 3 000 messages from a WebSocket agent, in order, through a full ring that wraps")
    for i in range(3):
        await s.publish("interop.ws.back", b"from-shm-%d" % i)
    back = [await w.next() for _ in range(3)]
    check([m.payload for m in back] == [b"from-shm-0", b"from-shm-1", b"from-shm-2"] and back[0].get("source") == "py-shm",
          "shared memory: what the agent writes into its ring reaches a WebSocket agent")
    await s.send(fc.Message(fc.GOODBYE))
    await s.ws.close()
    await w.close()


def issue_token(exe, key_file, agent_id, ttl="1h"):
    """A token from `flowbus token issue` (docs/security.md)."""
    return subprocess.run([exe, "token", "issue", "--key-file", key_file, "--kid", "k1", "--id", agent_id, "--ttl", ttl],
                          check=True, capture_output=True, text=True).stdout.strip()


def tampered(token):
    """token with one signature character changed (not the last: its low bits are padding)."""
    c = token[-5]
    return token[:-5] + ("B" if c == "A" else "A") + token[-4:]


async def auth_scenario(uri, exe, key_file):
    """A node with --auth token: a Python agent registers with a token of `flowbus token issue`;
    without one, with another agent's, or from a browser page's origin it is refused."""
    good = fc.Agent(uri, "py-worker-1", subscriptions=["auth.>"], token=issue_token(exe, key_file, "py-worker-*"))
    await good.connect()
    check(True, "auth: an agent with a token of `flowbus token issue` registers")
    for what, agent, code in [
            ("no token", fc.Agent(uri, "py-worker-2"), 76),
            ("a token for another id", fc.Agent(uri, "py-admin", token=issue_token(exe, key_file, "py-worker-*")), 79),
            ("a tampered token", fc.Agent(uri, "py-worker-3", token=tampered(issue_token(exe, key_file, "py-worker-*"))),
             77)]:
        try:
            await agent.connect()
            got = None
        except fc.ProtocolError as e:
            got = e.args[1] if len(e.args) > 1 else None
        check(got is not None and got.type == fc.ERROR and got.get("error_code") == code,
              "auth: %s is refused with ERROR %d" % (what, code))
        await agent.ws.close()
    try:
        await fc.Agent(uri, "py-page", token=issue_token(exe, key_file, "py-*"), origin="https://evil.example").connect()
        refused = False
    except websockets.exceptions.InvalidStatusCode as e:
        refused = e.status_code == 403
    check(refused, "a browser page's origin the node does not allow gets 403")
    await good.publish("auth.ping", b"still here")
    m = await good.next()
    check(m.payload == b"still here", "auth: the registered agent is served throughout")
    await good.send(fc.Message(fc.GOODBYE))
    await good.ws.close()


async def tls_scenario(uri, certs):
    """A node with --tls-cert and --tls-client-ca (certificates of `flowbus certs`): Python agents
    with a client certificate for py-worker-* talk over wss://; a client that does not trust the
    node's CA, one without a certificate, one in plain ws:// and one whose certificate is for
    other ids are each refused, and the agents keep talking."""
    def context(cert="py-worker-*", ca=True):
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem") if ca else None)
        if cert:
            ctx.load_cert_chain(os.path.join(certs, cert + ".pem"), os.path.join(certs, cert + ".key"))
        return ctx
    check(uri.startswith("wss://"), "tls: the node says wss://")
    a = fc.Agent(uri, "py-worker-1", subscriptions=["tls.>"], ssl=context())
    b = fc.Agent(uri, "py-worker-2", ssl=context())
    await a.connect()
    await b.connect()
    check(True, "tls: agents with client certificates for py-worker-* register over wss://")
    await b.publish("tls.x", b"encrypted")
    m = await a.next()
    check(m.payload == b"encrypted" and m.get("source") == "py-worker-2", "tls: a publish crosses the node")

    async def refused(what, agent):
        try:
            await agent.connect()
            await agent.next()
        except (ssl.SSLError, OSError, websockets.exceptions.WebSocketException, EOFError) as e:
            return "%s (%s)" % (what, type(e).__name__)
        return None
    for what, agent in [
            ("a client that does not trust the node's CA", fc.Agent(uri, "py-worker-3", ssl=context(ca=False))),
            ("a client without a certificate", fc.Agent(uri, "py-worker-4", ssl=context(cert=None))),
            ("a plain ws:// client", fc.Agent(uri.replace("wss:", "ws:"), "py-worker-5"))]:
        r = await refused(what, agent)
        check(r is not None, "tls: %s is refused" % (r or what))
    try:
        await fc.Agent(uri, "py-admin", ssl=context()).connect()
        err = None
    except fc.ProtocolError as e:
        err = e.args[1] if len(e.args) > 1 else None
    check(err is not None and err.type == fc.ERROR and err.get("error_code") == 79,
          "tls: a certificate for py-worker-* registering as py-admin gets ERROR 79")
    await a.publish("tls.y", b"still here")
    m = await a.next()
    check(m.payload == b"still here", "tls: the agents are served throughout")
    for ag in (a, b):
        await ag.send(fc.Message(fc.GOODBYE))
        await ag.ws.close()


class PemKey:
    """A `flowbus key gen` key, read with Debian's python3-cryptography: what Agent(key=...) needs."""
    def __init__(self, path):
        from cryptography.hazmat.primitives import serialization
        with open(path, "rb") as f:
            self.k = serialization.load_pem_private_key(f.read(), password=None)
        self.raw_public = self.k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_key(self):
        return self.raw_public

    def sign(self, data):
        return self.k.sign(data)


async def key_scenario(uri, keys):
    """A node with --auth key: Python agents sign the CHALLENGE's nonce with keys of `flowbus key gen`;
    an unknown key, a replayed signature and an id the key does not allow are refused, typed."""
    worker, stranger = PemKey(keys["worker"]), PemKey(keys["stranger"])
    a = fc.Agent(uri, "py-worker-1", subscriptions=["keys.>"], key=worker)
    await a.connect()
    check(True, "key: an agent signing the CHALLENGE with its Ed25519 key registers")

    class Replay:  # signs nothing: returns a signature made for another connection's nonce
        def __init__(self, key, sig):
            self.key, self.sig = key, sig
        def public_key(self):
            return self.key.public_key()
        def sign(self, _):
            return self.sig
    old = worker.sign(b"a nonce of another connection")
    for what, agent, code in [
            ("an unknown key", fc.Agent(uri, "py-worker-2", key=stranger), 77),
            ("a replayed signature", fc.Agent(uri, "py-worker-3", key=Replay(worker, old)), 77),
            ("no credentials", fc.Agent(uri, "py-worker-4"), 76),
            ("an id the key does not allow", fc.Agent(uri, "py-admin", key=worker), 79)]:
        try:
            await agent.connect()
            got = None
        except fc.ProtocolError as e:
            got = e.args[1] if len(e.args) > 1 else None
        if got is not None and got.type == fc.CHALLENGE:  # (an agent without a key sent REGISTER at once)
            got = await agent.next()
        check(got is not None and got.type == fc.ERROR and got.get("error_code") == code,
              "key: %s is refused with ERROR %d" % (what, code))
    b = fc.Agent(uri, "py-worker-5", key=worker)
    await b.connect()
    await b.publish("keys.x", b"signed")
    m = await a.next()
    check(m.payload == b"signed" and m.get("source") == "py-worker-5", "key: the registered agents are served throughout")
    for ag in (a, b):
        await ag.send(fc.Message(fc.GOODBYE))
        await ag.ws.close()


def run_node_scenarios(exe, extra, *scenarios):
    node, uri = start_node(exe, *extra)
    try:
        for sc in scenarios:
            asyncio.run(asyncio.wait_for(sc(uri), 60))
    finally:
        node.terminate()
        out, _ = node.communicate(timeout=30)
    print(out.strip())
    if node.returncode != 0:
        raise SystemExit("the node did not stop cleanly: %d" % node.returncode)


def main():
    exe = sys.argv[1]
    run_node_scenarios(exe, [], scenario, shm_scenario)
    with tempfile.TemporaryDirectory() as d:
        key_file = os.path.join(d, "k1")
        with open(key_file, "wb") as f:
            f.write(os.urandom(32))
        run_node_scenarios(exe, ["--auth", "token", "--auth-key", "k1=" + key_file],
                           lambda uri: auth_scenario(uri, exe, key_file))
    with tempfile.TemporaryDirectory() as d:
        keys = {}
        for name in ("worker", "stranger"):
            keys[name] = os.path.join(d, name + ".key")
            keys[name + ".pub"] = subprocess.run([exe, "key", "gen", "--out", keys[name]], check=True,
                                                 stdout=subprocess.PIPE, text=True).stdout.strip()
        agents = os.path.join(d, "agents.json")
        with open(agents, "w") as f:
            json.dump({"agents": [{"public_key": keys["worker.pub"], "id": "py-worker-*"}]}, f)
        run_node_scenarios(exe, ["--auth", "key", "--auth-agent-keys", agents], lambda uri: key_scenario(uri, keys))
    with tempfile.TemporaryDirectory() as certs:
        subprocess.run([exe, "certs", "--dir", certs, "--client", "py-worker-*"], check=True, stdout=subprocess.DEVNULL)
        run_node_scenarios(exe, ["--tls-cert", os.path.join(certs, "node.pem"), "--tls-key", os.path.join(certs, "node.key"),
                                 "--tls-client-ca", os.path.join(certs, "ca.pem")],
                           lambda uri: tls_scenario(uri, certs))
    print("interop: all checks passed")


if __name__ == "__main__":
    main()
