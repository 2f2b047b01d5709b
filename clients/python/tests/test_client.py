"""The Python client against a real `flowbus node` process: FLOWBUS_EXE names the executable
(CTest clients.python and scripts/test-install.sh set it).

    FLOWBUS_EXE=build/relwithdebinfo/apps/flowbus/flowbus python3 -m unittest discover -s clients/python/tests
"""
import asyncio
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import flowbus  # noqa: E402
from flowbus import protocol  # noqa: E402

EXE = os.environ.get("FLOWBUS_EXE", "flowbus")


class Node:
    """`flowbus node` on a given (or any free) port; stop() with SIGTERM."""

    def __init__(self, port=0, *extra):
        self.p = subprocess.Popen([EXE, "node", "--port", str(port), *extra], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        if "listening on" not in line:
            self.p.kill()
            raise RuntimeError("the node did not start: %r" % line)
        self.port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
        self.url = "ws://127.0.0.1:%d" % self.port

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        self.p.stdout.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NODE = None


def setUpModule():
    global NODE
    NODE = Node()


def tearDownModule():
    NODE.stop()


async def eventually(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


class ClientTest(unittest.IsolatedAsyncioTestCase):
    async def client(self, agent_id, **kw):
        c = flowbus.Client(NODE.url, agent_id, **kw)
        await c.connect()
        self.addAsyncCleanup(c.close)
        return c

    async def test_publish_subscribe_with_wildcards(self):
        sub, pub = await self.client("py-sub"), await self.client("py-pub")
        star = await sub.subscribe("py.ws.*.created")
        got = []
        await sub.subscribe("py.tail.>", got.append)  # the callback form
        pub.publish("py.ws.eu.created", "one", headers={"k": "v"}, priority=flowbus.Priority.HIGH)
        pub.publish("py.ws.eu.paid", "not for us")
        pub.publish("py.tail.a.b.c", b"\x00\xffbinary")
        m = await star.next(timeout=5)
        self.assertEqual((m.topic, m.text, m.source, m.headers, m.priority),
                         ("py.ws.eu.created", "one", "py-pub", {"k": "v"}, flowbus.Priority.HIGH))
        self.assertGreaterEqual(m.age, 0)
        self.assertTrue(await eventually(lambda: len(got) == 1))
        self.assertEqual(got[0].payload, b"\x00\xffbinary")
        with self.assertRaises(flowbus.Timeout):
            await star.next(timeout=0.3)  # py.ws.eu.paid did not match

    async def test_queue_group_shares_each_message_once(self):
        a, b, pub = await self.client("py-qa"), await self.client("py-qb"), await self.client("py-qp")
        seen = {"a": 0, "b": 0}
        await a.subscribe("py.jobs", lambda m: seen.__setitem__("a", seen["a"] + 1), queue="workers")
        await b.subscribe("py.jobs", lambda m: seen.__setitem__("b", seen["b"] + 1), queue="workers")
        for i in range(100):
            pub.publish("py.jobs", str(i))
        self.assertTrue(await eventually(lambda: seen["a"] + seen["b"] == 100))
        await asyncio.sleep(0.2)
        self.assertEqual(seen["a"] + seen["b"], 100)
        self.assertGreater(seen["a"], 0)
        self.assertGreater(seen["b"], 0)

    async def test_request_reply_and_typed_refusals(self):
        svc, req = await self.client("py-svc", capabilities=["upper"]), await self.client("py-req")

        async def answer(m):
            svc.respond(m, m.text.upper())

        await svc.subscribe("py.svc.upper", answer)
        svc.on_message = lambda m: svc.respond(m, "direct:" + m.text)  # requests to its id or capability
        r = await req.request("py.svc.upper", "hello", timeout=5)
        self.assertEqual((r.text, r.source), ("HELLO", "py-svc"))
        r = await req.request(flowbus.Agent("py-svc"), "x", timeout=5)
        self.assertEqual(r.text, "direct:x")
        r = await req.request(flowbus.Capability("upper"), "y", timeout=5)
        self.assertEqual(r.text, "direct:y")
        with self.assertRaises(flowbus.NoResponders) as e:
            await req.request("py.svc.nobody", "x", timeout=5)
        self.assertEqual(e.exception.code, 99)
        with self.assertRaises(flowbus.AgentUnavailable):
            await req.request(flowbus.Agent("py-nobody"), "x", timeout=5)
        with self.assertRaises(flowbus.NoCapableAgent):
            await req.request(flowbus.Capability("juggle"), "x", timeout=5)
        await svc.subscribe("py.svc.silent", lambda m: None)
        t0 = time.monotonic()
        with self.assertRaises(flowbus.Timeout):
            await req.request("py.svc.silent", "x", timeout=0.3)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    async def test_unicast_and_broadcast_reach_on_message_or_the_inbox(self):
        a, b = await self.client("py-ua", agent_type="alpha"), await self.client("py-ub", agent_type="beta")
        a.send("py-ub", "hi b")
        inbox = b.messages()
        m = await asyncio.wait_for(inbox.__anext__(), 5)
        self.assertEqual((m.text, m.source, m.target), ("hi b", "py-ua", "py-ub"))
        a.broadcast("to betas", agent_type="beta")
        m = await asyncio.wait_for(inbox.__anext__(), 5)
        self.assertEqual((m.text, m.type), ("to betas", flowbus.COORDINATION))

    async def test_local_refusals_are_typed(self):
        c = await self.client("py-bad")
        with self.assertRaises(flowbus.InvalidTopic):
            c.publish("a..b", "x")
        with self.assertRaises(flowbus.InvalidTopic):
            c.publish("a.*", "x")
        with self.assertRaises(flowbus.InvalidPattern):
            await c.subscribe("a.>.b")
        with self.assertRaises(flowbus.TooLarge):
            c.publish("a.b", b"x" * 70000)
        with self.assertRaises(flowbus.DuplicateAgent):
            await flowbus.Client(NODE.url, "py-bad", reconnect=False).connect()
        with self.assertRaises(flowbus.ConnectionClosed):
            await flowbus.Client("ws://127.0.0.1:%d" % free_port(), "py-nowhere", reconnect=False).connect()

    async def test_acked_publishing(self):
        sub, pub = await self.client("py-as"), await self.client("py-ap")
        s = await sub.subscribe("py.acked")
        await asyncio.gather(*(pub.publish_acked("py.acked", str(i)) for i in range(200)))
        self.assertEqual(pub.stats.acked, 200)
        got = [(await s.next(timeout=5)).text for _ in range(200)]
        self.assertEqual(sorted(got, key=int), [str(i) for i in range(200)])
        with self.assertRaises(flowbus.NoResponders):
            await pub.publish_acked("py.acked.nobody", "x")

    async def test_acking_subscriber_gets_a_failed_message_again(self):
        pub = await self.client("py-kp")
        tries = []

        def handler(m):
            tries.append(m.text)
            if len(tries) == 1:
                raise RuntimeError("fail the first delivery")

        sub = await self.client("py-ks", acks=True)
        await sub.subscribe("py.retry", handler)
        pub.publish("py.retry", "again")
        self.assertTrue(await eventually(lambda: len(tries) >= 2))
        self.assertEqual(tries[:2], ["again", "again"])
        self.assertEqual(sub.stats.handler_failures, 1)

    async def test_receive_window_and_batching(self):
        sub = await self.client("py-ws", receive_window=64)
        pub = await self.client("py-wp")
        s = await sub.subscribe("py.window")
        n = 3000  # below the node's queue for one connection (4096): none shed while we do not read
        for i in range(n):
            pub.publish("py.window", "%d" % i)
        await pub.flush()
        self.assertGreater(pub.stats.batches, 0)  # 3000 queued at once: written as BATCH frames
        self.assertLess(pub.stats.writes, n)
        got = [int((await s.next(timeout=10)).text) for _ in range(n)]
        self.assertEqual(got, list(range(n)))  # in order, through a window of 64 granted back

    async def test_deadline_past_is_not_delivered(self):
        sub, pub = await self.client("py-ds"), await self.client("py-dp")
        s = await sub.subscribe("py.deadline")
        pub.publish("py.deadline", "late", deadline=-1.0)
        pub.publish("py.deadline", "in time", deadline=30.0)
        m = await s.next(timeout=5)
        self.assertEqual(m.text, "in time")
        self.assertGreater(m.deadline_ns, time.time_ns())


class ReconnectTest(unittest.IsolatedAsyncioTestCase):
    async def test_reconnects_resubscribes_and_sends_what_queued(self):
        port = free_port()
        node = Node(port)
        c = flowbus.Client(node.url, "py-re", backoff=(0.05, 0.2))
        await c.connect()
        got = []
        await c.subscribe("py.re.>", got.append)
        node.stop()
        self.assertTrue(await eventually(lambda: not c.connected, 10))
        c.publish("py.re.queued", "sent after the reconnect")  # queued while down
        node = Node(port)
        try:
            self.assertTrue(await eventually(lambda: c.connected, 15))
            self.assertTrue(await eventually(lambda: len(got) == 1, 10))  # its own subscription, again
            self.assertEqual(got[0].text, "sent after the reconnect")
            self.assertEqual(c.stats.connects, 2)
        finally:
            await c.close()
            node.stop()


class PublicKeyTest(unittest.IsolatedAsyncioTestCase):
    async def test_a_key_of_flowbus_key_gen_registers_and_others_are_refused(self):
        import json
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            good, other = os.path.join(d, "good.pem"), os.path.join(d, "other.pem")
            public = subprocess.run([EXE, "key", "gen", "--out", good], capture_output=True, text=True,
                                    check=True).stdout.strip()
            subprocess.run([EXE, "key", "gen", "--out", other], capture_output=True, check=True)
            agents = os.path.join(d, "agents.json")
            with open(agents, "w") as f:
                json.dump({"agents": [{"public_key": public, "id": "py-key-*"}]}, f)
            node = Node(0, "--auth", "key", "--auth-agent-keys", agents)
            try:
                c = flowbus.Client(node.url, "py-key-1", key=good, reconnect=False)
                await c.connect()
                self.assertTrue(c.connected)
                got = await c.subscribe("py.key.>")
                c.publish("py.key.x", "signed in")
                self.assertEqual((await got.next(timeout=5)).text, "signed in")
                await c.close()
                with self.assertRaises(flowbus.Unauthenticated) as e:
                    await flowbus.Client(node.url, "py-key-2", key=other, reconnect=False).connect()
                self.assertEqual(e.exception.code, 77)  # a key the node does not have
                with self.assertRaises(flowbus.Unauthenticated) as e:
                    await flowbus.Client(node.url, "py-admin", key=good, reconnect=False).connect()
                self.assertEqual(e.exception.code, 79)  # an id the key does not allow
                with self.assertRaises(flowbus.Unauthenticated) as e:
                    await flowbus.Client(node.url, "py-key-3", reconnect=False).connect()
                self.assertEqual(e.exception.code, 76)  # no key at all
            finally:
                node.stop()


class StreamTest(unittest.IsolatedAsyncioTestCase):
    async def test_streams_consumers_acks_naks_and_redelivery(self):
        import tempfile
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        node = Node(0, "--stream-dir", d.name)
        self.addCleanup(node.stop)
        c = flowbus.Client(node.url, "py-streams")
        await c.connect()
        self.addAsyncCleanup(c.close)
        info = await c.streams.add("orders", ["py.orders.>"], fsync="always")
        self.assertEqual((info["name"], info["records"], info["fsync"]), ("orders", 0, "always"))
        with self.assertRaises(flowbus.StreamError) as e:
            await c.streams.add("orders", ["other.>"])
        self.assertEqual(e.exception.code, "exists")
        with self.assertRaises(flowbus.StreamError) as e:
            await c.streams.info("none")
        self.assertEqual(e.exception.code, "not_found")
        for i in range(5):
            await c.publish_acked("py.orders.eu", "order-%d" % i, headers={"k": "v"})
        self.assertEqual((await c.streams.list())[0]["records"], 5)

        sub = await c.subscribe("py.work.orders")
        await c.streams.add_consumer("orders", "proc", deliver_to="py.work.orders", ack_wait_ms=300, backoff_ms=0)
        first = await sub.next(timeout=5)
        self.assertTrue(first.is_request)
        self.assertEqual((first.text, first.headers["stream"], first.headers["stream-seq"], first.headers["stream-topic"],
                          first.headers["stream-deliveries"], first.headers["k"], first.source, first.reply_to),
                         ("order-0", "orders", "1", "py.orders.eu", "1", "v", "$stream.orders", "$stream.orders"))
        c.ack(first)
        second = await sub.next(timeout=5)
        c.nak(second)  # sent again at once (backoff 0)
        others = [await sub.next(timeout=5) for _ in range(3)]
        for m in others:
            c.ack(m)
        again = await sub.next(timeout=5)
        self.assertEqual((again.text, again.headers["stream-deliveries"]), ("order-1", "2"))
        # not acked: sent a third time after the 300 ms ack wait
        third = await sub.next(timeout=5)
        self.assertEqual((third.text, third.headers["stream-deliveries"]), ("order-1", "3"))
        c.ack(third)
        for _ in range(100):  # the ack reaches the stream's thread, the question $streams: not ordered
            ci = await c.streams.consumer_info("orders", "proc")
            if ci["pending"] == 0:
                break
            await asyncio.sleep(0.02)
        self.assertEqual((ci["ack_floor"], ci["pending"], ci["acked"], ci["naked"]), (5, 0, 5, 1))
        await c.streams.remove_consumer("orders", "proc")
        await c.streams.remove("orders")
        self.assertEqual(await c.streams.list(), [])


    async def test_dead_letter_queue_read_as_a_stream(self):
        import tempfile
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        node = Node(0, "--dlq-dir", d.name)  # no --stream-dir: $streams serves the queues
        self.addCleanup(node.stop)
        c = flowbus.Client(node.url, "py-dlq")
        await c.connect()
        self.addAsyncCleanup(c.close)
        names = [s["name"] for s in await c.streams.list()]
        self.assertIn("$dlq.agent_unavailable", names)
        with self.assertRaises(flowbus.StreamError) as e:
            await c.streams.remove("$dlq.agent_unavailable")
        self.assertEqual(e.exception.code, "bad_request")
        sub = await c.subscribe("py.dlq.watch")
        await c.streams.add_consumer("$dlq.agent_unavailable", "py-ops", deliver_to="py.dlq.watch")
        c.send(flowbus.Agent("py-nobody"), "lost task")  # an agent nobody runs: a dead letter
        m = await sub.next(timeout=10)
        self.assertEqual((m.text, m.headers["stream"], m.headers["dlq-reason"], m.headers["dlq-recipient"], m.source),
                         ("lost task", "$dlq.agent_unavailable", "agent_unavailable", "py-nobody",
                          "$dlq.agent_unavailable"))
        c.ack(m)
        for _ in range(100):
            ci = await c.streams.consumer_info("$dlq.agent_unavailable", "py-ops")
            if ci["acked"] == 1:
                break
            await asyncio.sleep(0.02)
        self.assertEqual((ci["acked"], ci["pending"]), (1, 0))
        self.assertEqual((await c.streams.info("$dlq.agent_unavailable"))["records"], 1)  # acked, still kept


class ProtocolTest(unittest.TestCase):
    def test_crc_and_batch_roundtrip(self):
        self.assertEqual(protocol.crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(protocol._crc32c_python(b"123456789"), 0xE3069283)
        enc, dec = protocol.Encoder(), protocol.Decoder()
        msgs = [protocol.Message(protocol.PUBLISH, {"topic": "a.b", "message_id": i}, b"x%d" % i) for i in range(3)]
        frame = enc.encode_many(msgs)
        out = dec.messages(frame)
        self.assertEqual([m.payload for m in out], [b"x0", b"x1", b"x2"])
        self.assertEqual([m.sequence for m in out], [0, 1, 2])
        self.assertEqual(enc.sequence, 3)

    def test_topic_rules(self):
        self.assertIsNone(protocol.validate_topic("a.b.c"))
        self.assertEqual(protocol.validate_topic("a..b"), "empty_token")
        self.assertEqual(protocol.validate_pattern("a.>.b"), "bad_wildcard")
        self.assertTrue(protocol.pattern_matches("a.>", "a.b.c"))
        self.assertFalse(protocol.pattern_matches("a.>", "a"))
        self.assertTrue(protocol.pattern_matches("a.*.c", "a.b.c"))

    def test_error_codes_map_to_classes(self):
        self.assertIsInstance(flowbus.error_for(105), flowbus.DuplicateAgent)
        self.assertIsInstance(flowbus.error_for(100), TimeoutError)
        self.assertIsInstance(flowbus.error_for(78), flowbus.Unauthenticated)
        self.assertIsInstance(flowbus.error_for(69), flowbus.NodeError)
        self.assertIsInstance(flowbus.error_for(11), flowbus.ProtocolError)


if __name__ == "__main__":
    unittest.main()
