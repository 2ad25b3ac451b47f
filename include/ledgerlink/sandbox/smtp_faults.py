"""A fault-injecting SMTP proxy: sits between a sender and a real SMTP server, relays the
conversation line by line and, on cue, answers in the server's place, drops the connection,
or withholds a reply. Used to exercise every failure class of the sender, and to hold the sender
at a chosen point of the send path while a test kills it.

Faults are keyed by the step they hit: ``CONNECT`` (the greeting), an SMTP verb (``EHLO``,
``AUTH``, ``MAIL``, ``RCPT``, ``DATA``) or ``END_OF_DATA`` (the final ``.`` of a message).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Step = Literal["CONNECT", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "END_OF_DATA"]
Action = Literal["reply", "drop", "hold", "relay_then_hold", "delay_reply"]


@dataclass
class Fault:
    """What to do at ``step``: ``reply`` answers with ``reply`` instead of the server; ``drop``
    closes the connection; ``hold`` withholds any answer until released; ``relay_then_hold``
    lets the server act on the step but withholds its reply from the sender, and closes once
    released; ``delay_reply`` passes the server's reply on once released."""

    step: Step
    action: Action
    reply: str = ""
    #: matching steps let through untouched before this fault acts (e.g. 1: the second message)
    pass_first: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class FaultPlan:
    """Faults consumed in order, one per matching step."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    def add(self, step: Step, action: Action, reply: str = "", *, pass_first: int = 0) -> Fault:
        fault = Fault(step, action, reply, pass_first)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, step: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.step == step:
                    if fault.pass_first:
                        fault.pass_first -= 1
                        return None
                    self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            for fault in self._faults:
                fault.release()
            self._faults.clear()


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    reply = b""
    while True:
        line = await reader.readline()
        if not line:
            return reply
        reply += line
        if line[3:4] != b"-":
            return reply


async def _wait(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.02)


class _Session:
    def __init__(self, plan: FaultPlan, upstream: tuple[str, int]) -> None:
        self.plan = plan
        self.upstream = upstream

    async def run(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_w: asyncio.StreamWriter | None = None
        try:
            fault = self.plan.take("CONNECT")
            if fault is not None and not await self._before_relay(fault, client_w):
                return
            server_r, server_w = await asyncio.open_connection(*self.upstream)
            client_w.write(await _read_reply(server_r))
            await client_w.drain()
            while True:
                line = await client_r.readline()
                if not line:
                    return
                step = line.split(b" ", 1)[0].strip().upper().decode(errors="replace")
                fault = self.plan.take(step)
                if fault is not None and not await self._before_relay(fault, client_w):
                    return
                if fault is not None and fault.action == "reply":
                    continue  # answered in the server's place; the server never sees the step
                server_w.write(line)
                await server_w.drain()
                reply = await _read_reply(server_r)
                if fault is not None and fault.action in ("relay_then_hold", "delay_reply"):
                    await self._hold(fault)
                    if fault.action == "relay_then_hold":
                        return
                client_w.write(reply)
                await client_w.drain()
                if step == "DATA" and reply.startswith(b"354"):
                    if not await self._relay_message(client_r, client_w, server_r, server_w):
                        return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.close()

    async def _before_relay(self, fault: Fault, client_w: asyncio.StreamWriter) -> bool:
        """Apply a fault that acts before the server sees the step; return whether to go on."""
        fault.reached.set()
        if fault.action == "reply":
            client_w.write(fault.reply.encode() + b"\r\n")
            await client_w.drain()
            return not fault.reply.startswith("421")
        if fault.action in ("drop", "hold"):
            if fault.action == "hold":
                await _wait(fault.released)
            return False
        return True  # relay_then_hold and delay_reply act after the relay

    async def _hold(self, fault: Fault) -> None:
        fault.reached.set()
        await _wait(fault.released)

    async def _relay_message(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> bool:
        content: list[bytes] = []
        while True:
            line = await client_r.readline()
            if not line:
                return False
            content.append(line)
            if line == b".\r\n":
                break
        fault = self.plan.take("END_OF_DATA")
        if fault is not None and fault.action not in ("relay_then_hold", "delay_reply"):
            # The server never sees the end of the message, so it never accepts it.
            return await self._before_relay(fault, client_w)
        server_w.write(b"".join(content))
        await server_w.drain()
        reply = await _read_reply(server_r)
        if fault is not None:
            await self._hold(fault)
            if fault.action == "relay_then_hold":
                return False
        client_w.write(reply)
        await client_w.drain()
        return True


class SmtpFaultProxy:
    """The proxy on a free loopback port, served from a background thread."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.plan = FaultPlan()
        self.host = host
        self.port = 0
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="smtp-fault-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(
                lambda r, w: _Session(self.plan, self._upstream).run(r, w), self.host, 0
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._started.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> SmtpFaultProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the SMTP fault proxy did not start")
        return self

    def stop(self) -> None:
        self.plan.clear()

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            sessions = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
