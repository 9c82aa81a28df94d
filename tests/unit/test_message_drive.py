"""The direct backend runs each message's handler at once, not as a task: what finishes without
waiting is done before the call returns, what waits goes on when its future is done, and a
handler that fails is logged without losing the other messages."""

from __future__ import annotations

import asyncio
import logging

from metamon_sp.showdown.direct import _drive


def test_a_handler_runs_at_once_waits_like_a_task_and_fails_alone(caplog):
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        lock, fut = asyncio.Lock(), loop.create_future()

        async def handler(name: str, wait: asyncio.Future | None = None) -> None:
            async with lock:  # a battle's lock, as poke-env's client holds it
                if wait is not None:
                    seen.append(f"{name} waits")
                    seen.append(f"{name} got {await wait}")
                else:
                    seen.append(name)

        async def broken() -> None:
            raise ValueError("bad message")

        _drive(handler("plain"), "b1")
        assert seen == ["plain"]  # done before `_drive` returned: no turn of the loop
        _drive(handler("request", fut), "b1")
        _drive(handler("next"), "b1")  # waits for the lock the request holds
        _drive(broken(), "b2")
        assert seen == ["plain", "request waits"]
        fut.set_result(3)
        for _ in range(5):
            await asyncio.sleep(0)
        return seen

    with caplog.at_level(logging.ERROR):
        seen = asyncio.run(main())
    assert seen == ["plain", "request waits", "request got 3", "next"]
    assert "b2" in caplog.text and "bad message" in caplog.text
