# idle_client.py PORT N M DIR - a traced test program: opens N TCP
# connections to 127.0.0.1:PORT, leaves M of them silent and keeps the
# others busy (a byte each way every 0.1 s), writes DIR/ready, and runs until
# DIR/stop exists.
import os, socket, sys, time

port, n, m, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
busy = conns[m:]
open(os.path.join(d, "ready"), "w").close()
while not os.path.exists(os.path.join(d, "stop")):
    for s in busy:
        s.sendall(b"x")
        s.recv(1)
    time.sleep(0.1)
