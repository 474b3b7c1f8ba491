"""The program under test in test_scenario.py: THREADS threads (default 1)
connect to PORT on 127.0.0.1 every 20 ms and print one line per attempt
("ok" or the errno name). A line "pause" on standard input stops the
connects; the end of standard input ends the program."""

import errno
import socket
import sys
import threading
import time

port = int(sys.argv[1])
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
paused = threading.Event()
done = threading.Event()
out = threading.Lock()


def control():
    for line in sys.stdin:
        if line.strip() == "pause":
            paused.set()
    done.set()


def dial():
    while not done.is_set():
        if paused.is_set():
            time.sleep(0.01)
            continue
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            result = "ok"
        except OSError as e:
            result = errno.errorcode.get(e.errno, str(e.errno))
        finally:
            s.close()
        with out:
            sys.stdout.write(result + "\n")
            sys.stdout.flush()
        time.sleep(0.02)


threading.Thread(target=control, daemon=True).start()
workers = [threading.Thread(target=dial) for _ in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
