"""The program under test in test_scenario.py: it connects to PORT on
127.0.0.1 every 20 ms and prints one line per attempt ("ok" or the errno
name), until its standard input is closed."""

import errno
import socket
import sys
import threading
import time

port = int(sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
while not done.is_set():
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    finally:
        s.close()
    time.sleep(0.02)
