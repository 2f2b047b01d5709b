#!/usr/bin/env python3
"""The monitoring dashboard in a real browser: a `flowbus node` under load (`flowbus bench
latency`), its page opened in headless Chromium (Debian's `chromium`) driven over the DevTools
protocol. Waits for the page's figures to appear and move, checks them against /varz, and takes a
screenshot. Usage: dashboard_test.py PATH/TO/flowbus [--screenshot OUT.png]"""
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

from monitor_support import Node, check


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def number(text):
    """The dashboard's figures: "1.23 M", "4.5 k", "17", "250 µs", "1.20 ms"."""
    m = re.match(r"^\s*([0-9.]+)\s*(M|k|µs|ms)?", text)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"M": 1e6, "k": 1e3, "ms": 1e3}.get(m.group(2), 1)


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    async def figures(self):
        return await self.eval("""(() => {
          const ids = ["in_msgs_per_s", "out_msgs_per_s", "p50", "p95", "p99", "connections", "agents",
                       "subscriptions", "dead_letters", "breakers_open", "status", "updated", "slowest_hop"];
          const o = {refreshed: Number(document.body.dataset.refreshed || 0)};
          for (const id of ids) o[id] = document.getElementById(id).textContent;
          o.traffic_rows = document.querySelectorAll("#top_traffic tr").length - 1;
          return o; })()""")


def start_chromium(port, profile):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    check(exe is not None, "chromium is installed (scripts/setup.sh)")
    return subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=%d" % port,
                             "--user-data-dir=" + profile, "--window-size=1280,1500", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def page_socket(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=2) as r:
                for t in json.loads(r.read()):
                    if t.get("type") == "page" and "webSocketDebuggerUrl" in t:
                        return t["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("chromium's DevTools endpoint did not come up")


async def drive(node, dbg_port, screenshot):
    async with websockets.connect(page_socket(dbg_port), max_size=None) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=node.monitor + "/")
        # the figures appear: a few refreshes with traffic flowing
        end = time.time() + 30
        f = {}
        while time.time() < end:
            f = await page.figures() or {}
            if f.get("refreshed", 0) >= 3 and (number(f.get("out_msgs_per_s", "")) or 0) > 0 \
                    and number(f.get("p99", "")) is not None and f.get("connections") == "2":
                break
            await asyncio.sleep(0.25)
        check(f.get("refreshed", 0) >= 3, "the page refreshed itself %s times without a reload" % f.get("refreshed"))
        check(f["status"] == "healthy", "the page shows the node healthy")
        varz = node.json("/varz")
        check(f["connections"] == str(varz["connections"]) == "2", "connections shown == /varz (2)")
        check(f["agents"] == str(varz["agents"]), "agents shown == /varz (%s)" % f["agents"])
        check(f["subscriptions"] == str(varz["subscriptions"]), "subscriptions shown == /varz")
        rate, vrate = number(f["out_msgs_per_s"]), varz["out_msgs_per_s"]
        check(rate and 500 <= rate <= 4000, "msgs/s out shown near the offered 2000/s: %s" % f["out_msgs_per_s"])
        check(abs(rate - vrate) <= 0.5 * vrate, "msgs/s out shown (%s) within 50%% of /varz (%.0f)" % (rate, vrate))
        check(number(f["p50"]) <= number(f["p99"]), "p50 %s <= p99 %s" % (f["p50"], f["p99"]))
        check(f["traffic_rows"] == 2, "the top-traffic table lists the two bench agents")
        tz = node.json("/tracez")
        # (the slowest of two close segments may change between the page's refresh and this GET)
        check(tz["slowest_hop"] is not None and any(f["slowest_hop"].startswith(g["segment"] + ",") for g in tz["segments"]),
              "the slowest traced hop shown is one of /tracez's segments: %s" % f["slowest_hop"])
        # the figures move: the clock of the last update changes and the refresh count grows
        before = f
        await asyncio.sleep(2.5)
        after = await page.figures()
        check(after["refreshed"] >= before["refreshed"] + 2, "two more refreshes in 2.5 s")
        check(after["updated"] != before["updated"], "the update time moved (%s -> %s)" % (before["updated"], after["updated"]))
        shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(shot["data"])
        check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, "a screenshot of the page (%d bytes)" % len(png))
        if screenshot:
            with open(screenshot, "wb") as out:
                out.write(png)
            print("screenshot written to", screenshot)


def main(exe, screenshot=None):
    node = Node(exe, "--log-level", "warn", "--trace-sample", "100")
    profile = tempfile.mkdtemp(prefix="flowbus-chromium-")
    dbg = free_port()
    browser = None
    try:
        load = node.load(2000, 20)
        node.wait_for(lambda: node.json("/varz")["connections"] == 2, what="the bench's two connections")
        browser = start_chromium(dbg, profile)
        asyncio.run(drive(node, dbg, screenshot))
        load.kill()
        load.wait()
    finally:
        if browser:
            browser.kill()
            browser.wait()
        node.stop()
        shutil.rmtree(profile, ignore_errors=True)
    print("dashboard_test: all checks passed")


if __name__ == "__main__":
    args = sys.argv[1:]
    shot = None
    if "--screenshot" in args:
        i = args.index("--screenshot")
        shot = args[i + 1]
        del args[i:i + 2]
    main(args[0], shot)
