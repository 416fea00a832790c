# echo_server.py PORTFILE - an untraced TCP echo server on a free loopback
# port (written to PORTFILE), one thread per connection.
import socket, sys, threading

def serve(c):
    while True:
        b = c.recv(4096)
        if not b:
            return
        c.sendall(b)

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(128)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
