"""Shared by the monitoring tests: a `flowbus node` process with its monitoring port, load from
`flowbus bench`, and GETs of the monitoring endpoints."""
import json
import subprocess
import time
import urllib.error
import urllib.request


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  ", what)


class Node:
    """`flowbus node --port 0 --monitor-port 0` (extra: more node flags)."""

    def __init__(self, exe, *extra):
        self.exe = exe
        self.p = subprocess.Popen([exe, "node", "--port", "0", "--monitor-port", "0", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [self.p.stdout.readline(), self.p.stdout.readline()]
        if "listening on" not in lines[0] or "monitoring on http://" not in lines[1]:
            self.p.kill()
            raise SystemExit("the node did not start: %r" % lines)
        self.ws_port = int(lines[0].split("://")[1].split()[0].rsplit(":", 1)[1])
        self.monitor = lines[1].split("monitoring on ")[1].strip()

    def get(self, path):
        """(status, parsed JSON or text)"""
        try:
            with urllib.request.urlopen(self.monitor + path, timeout=10) as r:
                body, status, ctype = r.read().decode(), r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            body, status, ctype = e.read().decode(), e.code, e.headers.get("Content-Type", "")
        return status, (json.loads(body) if ctype.startswith("application/json") else body)

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body))
        return body

    def load(self, rate, seconds):
        """`flowbus bench latency` against this node, in the background (a publisher and a subscriber)."""
        return subprocess.Popen([self.exe, "bench", "latency", "--connect", "127.0.0.1:%d" % self.ws_port,
                                 "--rate", str(rate), "--seconds", str(seconds)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def wait_for(self, pred, timeout=20, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        return self.p.stderr.read()
