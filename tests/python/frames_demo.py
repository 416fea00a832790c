# frames_demo.py - calls os.uname() from known places; pyprobe records the
# Python stack at each call. Each call line carries a marker the test greps.
import asyncio
import os
import threading


def leaf():
    os.uname()  # MARK:leaf


class Frontier:
    def push(self):
        leaf()  # MARK:push

    @staticmethod
    def nested():
        def inner():
            os.uname()  # MARK:inner
        inner()  # MARK:nested


def gen():
    yield os.uname()  # MARK:gen


async def task():
    await asyncio.sleep(0)
    os.uname()  # MARK:task


def in_thread():
    leaf()  # MARK:thread


def main():
    Frontier().push()  # MARK:main_push
    Frontier.nested()  # MARK:main_nested
    list(gen())  # MARK:main_gen
    asyncio.run(task())  # MARK:main_task
    t = threading.Thread(target=in_thread)
    t.start()
    t.join()


main()  # MARK:module
