"""A pytest-style scenario (it runs under pytest or plain unittest): a
Python service runs under connvisor, and the test refuses its database
for a second through the control API, then checks what the service saw.

    CONNVISOR=/path/to/connvisor python3 -m unittest test_scenario.py
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from connvisor_control import Control, ControlError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Database:
    """A loopback TCP server standing for the database (outside the tree)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.close()


class ScenarioTest(unittest.TestCase):
    threads = 1

    def setUp(self):
        self.db = Database()
        self.dir = tempfile.mkdtemp()
        self.sock = os.path.join(self.dir, "cv.sock")
        self.proc = subprocess.Popen(
            [os.environ.get("CONNVISOR", "connvisor"), "run", "-q", "--control", self.sock, "--",
             sys.executable, os.path.join(HERE, "service.py"), str(self.db.port), str(self.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.cv = Control(self.sock)
        self.cv.wait_ready()
        self.lines = []
        self.seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.seen:
                self.lines.append(line.strip())
                self.seen.notify_all()

    def wait_for(self, pred, timeout=60):
        with self.seen:
            self.assertTrue(self.seen.wait_for(lambda: pred(self.lines), timeout), self.lines[-20:])

    def tearDown(self):
        self.proc.stdin.close()
        self.assertEqual(self.proc.wait(timeout=60), 0)
        self.proc.stdout.close()
        self.db.sock.close()

    def test_refuse_the_database_for_a_second(self):
        self.wait_for(lambda ls: "ok" in ls)
        rule = self.cv.add_rule("fail tcp 127.0.0.1 port %d errno=ECONNREFUSED for=1s" % self.db.port)
        self.assertEqual(rule["action"], "fail")
        start = len(self.lines)
        # the service sees refusals, then recovers by itself when the window closes
        self.wait_for(lambda ls: "ECONNREFUSED" in ls[start:])
        self.wait_for(lambda ls: "ok" in ls[ls.index("ECONNREFUSED", start):])
        dest = "tcp 127.0.0.1:%d" % self.db.port
        stats = self.cv.stats()[dest]
        self.assertGreater(stats["failed"], 0)
        self.assertEqual(stats["seen"], stats["allowed"] + stats["failed"])
        # every refusal the service printed is a fault of our rule in the log
        faults = [d for d in self.cv.decisions(limit=10000)["decisions"] if d["rule"] == rule["origin"]]
        self.assertTrue(faults)
        self.assertTrue(all(d["injected"] == "ECONNREFUSED" for d in faults))
        # reset: the counters start again from zero (they count no more than
        # the log holds after the reset), and the window restarts, so the
        # rule fails connects again
        last = self.cv.reset()["last_seq"]
        seen = self.cv.stats().get(dest, {"seen": 0})["seen"]
        after = [d for d in self.cv.decisions(since=last, limit=10000)["decisions"] if d["dest"] == dest]
        self.assertLessEqual(seen, len(after))
        start = len(self.lines)
        self.wait_for(lambda ls: "ECONNREFUSED" in ls[start:])
        self.cv.remove_rule(rule["id"])

    def test_invalid_policy_is_refused_and_the_old_one_stays(self):
        before = self.cv.policy()["text"]
        with self.assertRaises(ControlError) as e:
            self.cv.set_policy("allow tcp 127.0.0.1\nfail 127.0.0.1=ECONREFUSED\n")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("policy:2:16:", e.exception.message)
        self.assertEqual(self.cv.policy()["text"], before)


    def settle(self):
        """Pause the service and wait until the decision log stops growing:
        then it holds every connect the service printed."""
        self.proc.stdin.write("pause\n")
        self.proc.stdin.flush()
        last = -1
        while True:
            log = self.cv.decisions(limit=10000)["decisions"]
            if len(log) == last:
                return log
            last = len(log)
            time.sleep(0.2)


class SwapUnder32ThreadsTest(ScenarioTest):
    """32 threads connect while the policy is replaced: every connect is
    decided by the old policy or the new one, as a whole."""

    threads = 32

    def test_refuse_the_database_for_a_second(self):
        pass  # the one-thread scenario above

    def test_atomic_policy_swap(self):
        self.wait_for(lambda ls: len(ls) >= 100)
        new = ("allow unix\n"
               "fail tcp 127.0.0.1 port %d errno=ECONNREFUSED\n"
               "allow any 127.0.0.0/8\n"
               "default deny\n" % self.db.port)
        self.cv.set_policy(new)
        start = len(self.lines)
        self.wait_for(lambda ls: ls[start:].count("ECONNREFUSED") >= 100)
        log = self.settle()
        dest = "tcp 127.0.0.1:%d" % self.db.port
        old_rule, new_rule = "default", "policy:2"  # the embedded default's loopback rule
        by_rule = {}
        for d in log:
            if d["dest"] == dest:
                by_rule[d["rule"]] = by_rule.get(d["rule"], 0) + 1
        self.assertEqual(set(by_rule), {old_rule, new_rule}, by_rule)
        with self.seen:
            printed = {r: self.lines.count(r) for r in set(self.lines)}
        self.assertEqual(printed, {"ok": by_rule[old_rule], "ECONNREFUSED": by_rule[new_rule]})


if __name__ == "__main__":
    unittest.main()
