# asyncio_work.py - asyncio socket workload for bench/python/run.sh: a
# loopback echo server and 50 clients doing 200 round trips each.
import asyncio


async def handle(reader, writer):
    while data := await reader.readline():
        writer.write(data)
        await writer.drain()
    writer.close()


async def client(port, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(n):
        writer.write(b"ping %d\n" % i)
        await writer.drain()
        await reader.readline()
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await asyncio.gather(*(client(port, 200) for _ in range(50)))
    server.close()
    await server.wait_closed()
    print("done")


asyncio.run(main())
