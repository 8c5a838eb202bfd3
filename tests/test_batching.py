"""The coalescing of concurrent calls (``gotaskq.batching.Batcher``): plain asyncio, no server."""

from __future__ import annotations

import asyncio

import pytest

from gotaskq.batching import GATHER_PASSES, Batcher


def recorder() -> tuple[list[list[int]], Batcher[int, int]]:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    return calls, Batcher(flush)


async def test_callers_arriving_over_a_few_loop_passes_share_one_flush() -> None:
    calls, batcher = recorder()

    async def after(passes: int) -> int:
        for _ in range(passes):
            await asyncio.sleep(0)
        return await batcher.submit(passes)

    assert await asyncio.gather(*(after(k) for k in range(5))) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]]


async def test_a_lone_caller_is_flushed_after_one_pass_and_gathering_stops_at_the_cap() -> None:
    calls, batcher = recorder()
    passes = 0

    async def ticker() -> None:
        nonlocal passes
        while True:
            passes += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    start = passes
    assert await batcher.submit(7) == 70
    # the flush task starts, gathers one pass, flushes (its own pass), the caller resumes
    assert passes - start <= 5
    ticking.cancel()
    assert calls == [[7]]

    async def after(passes: int) -> int:
        for _ in range(passes):
            await asyncio.sleep(0)
        return await batcher.submit(passes)

    # one newcomer every pass, for longer than the flush waits: the first flush goes at the cap
    await asyncio.gather(*(after(k) for k in range(GATHER_PASSES + 8)))
    assert len(calls[1]) <= GATHER_PASSES + 1 < GATHER_PASSES + 8
    assert sorted(i for call in calls[1:] for i in call) == list(range(GATHER_PASSES + 8))


async def test_gathering_stops_at_max_batch() -> None:
    left: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        left.append(len(batcher.pending))  # callers already waiting for the next flush
        return items

    batcher: Batcher[int, int] = Batcher(flush, max_batch=3)

    async def after(passes: int) -> int:
        for _ in range(passes):
            await asyncio.sleep(0)
        return await batcher.submit(passes)

    assert await asyncio.gather(*(after(k) for k in range(5))) == [0, 1, 2, 3, 4]
    assert left[0] == 0  # the first 3 went as soon as they were there, before the 4th came


async def test_items_that_come_during_a_flush_go_in_the_next_one() -> None:
    calls: list[list[int]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        calls.append(list(items))
        started.set()
        await release.wait()  # the first flush stays in flight until the later callers came
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    first = asyncio.ensure_future(asyncio.gather(*(batcher.submit(i) for i in range(3))))
    await started.wait()
    later = asyncio.ensure_future(asyncio.gather(batcher.submit(3), batcher.submit(4)))
    await asyncio.sleep(0)
    release.set()
    assert await first == [0, 10, 20] and await later == [30, 40]
    assert calls == [[0, 1, 2], [3, 4]]


async def test_a_failed_flush_fails_its_callers_only() -> None:
    rounds = 0

    async def flush(items: list[int]) -> list[int]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("down")
        return items

    batcher: Batcher[int, int] = Batcher(flush)
    with pytest.raises(RuntimeError, match="down"):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2


async def test_cancelling_the_flush_task_while_it_gathers_cancels_the_waiting_callers() -> None:
    calls, batcher = recorder()
    waiting = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the caller made the flush task
    await asyncio.sleep(0)  # which now gathers
    assert batcher.task is not None
    batcher.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    assert calls == [] and batcher.pending == []
    assert await batcher.submit(2) == 20  # a new caller starts a new flush task


async def test_a_flush_task_cancelled_before_its_first_step_leaves_no_caller_waiting() -> None:
    calls, batcher = recorder()
    waiting = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the caller made the flush task; it has not run yet
    assert batcher.task is not None
    batcher.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    assert calls == [] and batcher.pending == []


async def test_cancelling_the_flush_task_mid_flush_cancels_its_callers_and_those_waiting() -> None:
    started = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(3600)
        return items

    batcher: Batcher[int, int] = Batcher(flush)
    first = asyncio.ensure_future(batcher.submit(1))
    await started.wait()
    second = asyncio.ensure_future(batcher.submit(2))  # waits for the next flush
    await asyncio.sleep(0)
    assert batcher.task is not None
    batcher.task.cancel()
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5)
    assert batcher.pending == []


async def test_a_caller_cancelled_before_the_flush_is_left_out_of_it() -> None:
    calls, batcher = recorder()
    gone = asyncio.ensure_future(batcher.submit(1))
    stays = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)  # both wait; the flush task has not run yet
    gone.cancel()
    assert await stays == 20
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert calls == [[2]]


async def test_a_flush_that_answers_the_wrong_count_fails_its_callers() -> None:
    async def flush(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(flush)
    with pytest.raises(RuntimeError, match="answered"):
        await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2)), 5)
