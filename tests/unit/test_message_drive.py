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


def test_a_sides_messages_wait_for_its_decision_and_keep_their_order():
    """Without poke-env's client (and its battle locks), a match hands each side's messages to
    its player in order: what comes while a decision waits is handled after it, even when one of
    them waits in turn, and neither the other side nor other battles wait."""
    from types import SimpleNamespace

    from metamon_sp.showdown.direct import DirectMatch

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        waits = {"request": loop.create_future(), "next": loop.create_future()}

        class Player:
            def __init__(self, name: str):
                self.username, self.ps_client = name, SimpleNamespace()

            async def _handle_battle_message(self, message: list[list[str]]) -> None:
                what = f"{message[0][0][1:]}/{self.username}:{message[1][1]}"
                wait = waits.get(message[1][1]) if self.username == "p1" else None
                if wait is not None:
                    seen.append(f"{what} waits")
                    await wait
                seen.append(what)

        match = DirectMatch(SimpleNamespace(), Player("p1"), Player("p2"), 1, "gen1ou", "s0",
                            seed=0, concurrency=1)
        match._on_rows([["b1", "p1", "|request"], ["b1", "p2", "|request"],
                        ["b1", "p1", "|next"], ["b2", "p1", "|plain"], ["b1", "p1", "|after"]])
        assert seen == ["b1/p1:request waits", "b1/p2:request", "b2/p1:plain"]
        waits["request"].set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        assert seen[3:] == ["b1/p1:request", "b1/p1:next waits"]
        waits["next"].set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        assert not match._waiting
        return seen[5:]

    assert asyncio.run(main()) == ["b1/p1:next", "b1/p1:after"]
