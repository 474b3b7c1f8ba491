"""A client of connvisor's control API, for tests written in Python.

Standard library only: copy this file next to your tests.

    from connvisor_control import Control

    cv = Control("/tmp/cv.sock")          # connvisor run --control /tmp/cv.sock -- ./service
    rule = cv.add_rule("fail tcp 127.0.0.1 port 5432 errno=ECONNREFUSED for=10s")
    ...                                    # the service cannot reach the database for 10 s
    cv.remove_rule(rule["id"])
    print(cv.stats())                      # per destination: seen, allowed, denied, failed
    cv.reset()                             # counters, fault schedules and time windows
"""

import http.client
import json
import socket
import time


class ControlError(Exception):
    """An answer of the API other than 2xx: status is the HTTP status,
    message the API's error (a policy error names line and column)."""

    def __init__(self, status, message):
        super().__init__("HTTP %d: %s" % (status, message))
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("connvisor", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Control:
    """The control API of one `connvisor run --control PATH`."""

    def __init__(self, path, timeout=30.0):
        self.path = path
        self.timeout = timeout

    def request(self, method, url, body=None, content_type=None):
        conn = _UnixConnection(self.path, self.timeout)
        try:
            headers = {}
            if content_type:
                headers["Content-Type"] = content_type
            conn.request(method, url, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            try:
                message = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                message = data.decode("utf-8", "replace")
            raise ControlError(resp.status, message)
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(data)
        return data.decode("utf-8")

    def wait_ready(self, timeout=30.0):
        """Wait until connvisor answers on the socket (it starts the API
        before the command)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.policy()
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def policy(self):
        """The rules in force: {"text", "rules": [{"id", "rule", ...}], "default", "seed"}."""
        return self.request("GET", "/v1/policy")

    def set_policy(self, text):
        """Replace the whole policy (the file language); an invalid one
        raises ControlError(400) naming line and column, and the old stays."""
        return self.request("PUT", "/v1/policy", text.encode(), "text/plain")

    def add_rule(self, rule, after=None):
        """Add one rule line in front of the others, or after the rule
        with id `after`; returns {"id", "rule", ...}."""
        req = {"rule": rule}
        if after is not None:
            req["after"] = after
        return self.request("POST", "/v1/rules", json.dumps(req).encode(), "application/json")

    def remove_rule(self, rule_id):
        return self.request("DELETE", "/v1/rules/%d" % rule_id)

    def stats(self):
        """{dest: {"seen", "allowed", "denied", "failed", "p50_us", ...}}."""
        return {d["dest"]: d for d in self.request("GET", "/v1/stats")["destinations"]}

    def reset(self):
        """Zero the counters; restart every fault schedule and time window."""
        return self.request("POST", "/v1/reset")

    def decisions(self, since=0, limit=1000):
        """The decisions after number `since`: {"decisions": [...], "next", "dropped"}."""
        return self.request("GET", "/v1/decisions?since=%d&limit=%d" % (since, limit))

    def metrics(self):
        """The Prometheus text of /metrics."""
        return self.request("GET", "/metrics")
