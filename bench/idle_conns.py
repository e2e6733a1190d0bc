"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on each,
reads the responses, then (holding them all open and idle) prints the VmRSS
in KiB of process PID. Used by bench/run.sh."""
import selectors
import socket
import sys
import time

port, path, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
socks = []
for i in range(n):
    for attempt in range(50):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit("cannot open connection %d" % i)
    s.sendall(req)
    socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
pending = set(socks)
deadline = time.time() + 60
while pending and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        if data and b"\r\n\r\n" in data:
            sel.unregister(s)
            pending.discard(s)
if pending:
    raise SystemExit("%d connections got no response" % len(pending))
time.sleep(1.0)
with open("/proc/%d/status" % pid) as f:
    for line in f:
        if line.startswith("VmRSS"):
            print(line.split()[1])
for s in socks:
    s.close()
