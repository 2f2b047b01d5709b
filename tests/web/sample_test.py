#!/usr/bin/env python3
"""samples/web/index.html in a real browser: a `flowbus node` that allows the page's origin, the
repository served over HTTP, and the page opened in headless Chromium (driven over the DevTools
protocol). Its coordinator and workers — the JavaScript client in the browser, each its own
WebSocket — must exchange tasks: results arrive, every worker takes some, none fail, and the node
sees the page's agents. Usage: sample_test.py PATH/TO/flowbus"""
import asyncio
import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "monitor"))
from dashboard_test import Page, free_port, page_socket, start_chromium  # noqa: E402
from monitor_support import Node, check  # noqa: E402


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


async def drive(node, page_url, dbg):
    async with websockets.connect(page_socket(dbg), max_size=None) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=page_url)
        end, state = time.time() + 40, {}
        while time.time() < end:
            state = await page.eval("""({done: Number(document.body.dataset.done || 0),
                failed: Number(document.body.dataset.failed || 0), error: document.body.dataset.error || null,
                workers: [...document.querySelectorAll('tr[data-worker]')].map(r => Number(r.cells[1].textContent))})""") or {}
            if state.get("error") or state.get("done", 0) >= 60:
                break
            await asyncio.sleep(0.25)
        check(state.get("error") is None, "the page's agents connected (%s)" % state.get("error"))
        check(state.get("done", 0) >= 60, "results arrive in the page: %s" % state.get("done"))
        check(state.get("failed") == 0, "no task failed")
        check(len(state["workers"]) == 3 and all(n > 0 for n in state["workers"]),
              "the three workers shared the tasks: %s" % state["workers"])
        agents = [a["id"] for a in node.json("/agentz")["agents"]]
        check(sum(a.startswith("web-worker-") for a in agents) == 3 and any(a.startswith("web-coordinator-") for a in agents),
              "the node sees the page's four agents")
        p50 = await page.eval("document.getElementById('p50').textContent")
        check(p50.endswith(" ms"), "the page shows the round trip's p50: %s" % p50)


def main(exe):
    http_port = free_port()
    origin = "http://127.0.0.1:%d" % http_port
    node = Node(exe, "--log-level", "warn", "--allow-origin", origin)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), functools.partial(Quiet, directory=ROOT))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="flowbus-chromium-")
    dbg = free_port()
    browser = None
    try:
        browser = start_chromium(dbg, profile)
        url = "%s/samples/web/index.html?node=ws://127.0.0.1:%d" % (origin, node.ws_port)
        asyncio.run(drive(node, url, dbg))
    finally:
        if browser:
            browser.kill()
            browser.wait()
        server.shutdown()
        node.stop()
        shutil.rmtree(profile, ignore_errors=True)
    print("web sample: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
