"""One PySyncObj replica for the benchmark: a replicated counter, and a control port on which the
load generator asks for writes.

Protocol on the control port, one line each way per request:
    "i\\n"  -> "ok <counter>\\n" once the increment is committed and applied, or "err <reason>\\n"
    "s\\n"  -> "ok <status JSON>\\n" (state, leader, commit_idx, last_applied, ...)
Heartbeat and election timeouts match the other systems: 100 ms, and 1.0-2.0 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated


class Counter(SyncObj):  # type: ignore[misc]
    def __init__(self, self_address: str, partners: list[str]) -> None:
        conf = SyncObjConf(appendEntriesPeriod=0.1, raftMinTimeout=1.0, raftMaxTimeout=2.0,
                           connectionTimeout=3.5, connectionRetryTime=0.5, dynamicMembershipChange=False)
        super().__init__(self_address, partners, conf)
        self.value = 0

    @replicated  # type: ignore[untyped-decorator]
    def incr(self) -> int:
        self.value += 1
        return self.value


def status_line(obj: Counter) -> bytes:
    raw = obj.getStatus()
    wanted = ("state", "leader", "commit_idx", "last_applied", "raft_term", "has_quorum", "self")
    return b"ok " + json.dumps({k: str(raw[k]) if k in ("leader", "self") else raw[k] for k in wanted}).encode()


async def increment(obj: Counter) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    def finish(line: bytes) -> None:
        if not done.done():
            done.set_result(line)

    def callback(result: object, error: int) -> None:  # runs on PySyncObj's own thread
        line = f"ok {result}".encode() if error == FAIL_REASON.SUCCESS else f"err {error}".encode()
        loop.call_soon_threadsafe(finish, line)

    obj.incr(callback=callback)
    return await done


async def serve_connection(obj: Counter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            command = line.strip()
            answer = await increment(obj) if command == b"i" else status_line(obj) if command == b"s" \
                else b"err unknown command"
            writer.write(answer + b"\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--self", dest="self_address", required=True)
    parser.add_argument("--partners", required=True, help="HOST:PORT,HOST:PORT")
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    obj = Counter(args.self_address, args.partners.split(","))
    server = await asyncio.start_server(lambda r, w: serve_connection(obj, r, w), "127.0.0.1", args.control)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
