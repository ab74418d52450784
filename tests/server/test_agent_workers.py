"""Agent requests' blocking work runs in a few threads of its own, apart from the API's pool."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import anyio
from starlette.concurrency import run_in_threadpool

from hostql.server import agent_workers


def test_busy_agent_workers_leave_the_api_pool_free_and_queue_the_next_agent_call() -> None:
    state = SimpleNamespace(extras={})
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def agent_work(number: int) -> int:
        with lock:
            started.append(number)
        release.wait(30)
        return number

    async def main() -> tuple[str, list[int], list[int]]:
        results: list[int] = []
        async with anyio.create_task_group() as group:
            async def agent_call(number: int) -> None:
                results.append(await agent_workers.run_for_agent(state, agent_work, number))

            for number in range(agent_workers.AGENT_WORKERS + 1):
                group.start_soon(agent_call, number)
            with anyio.fail_after(30):
                while len(started) < agent_workers.AGENT_WORKERS:
                    await anyio.sleep(0.01)
            api_answer = await run_in_threadpool(lambda: "api answered")  # not stuck behind the agents
            started_while_full = list(started)
            release.set()
        return api_answer, started_while_full, sorted(results)

    api_answer, started_while_full, results = anyio.run(main)
    assert api_answer == "api answered"
    assert len(started_while_full) == agent_workers.AGENT_WORKERS  # the extra agent call waited for a thread
    assert results == list(range(agent_workers.AGENT_WORKERS + 1))
    assert agent_workers.limiter_for(state.extras) is agent_workers.limiter_for(state.extras)


def test_agent_reads_do_not_queue_behind_agent_writes() -> None:
    state = SimpleNamespace(extras={})
    release = threading.Event()
    writing = threading.Semaphore(0)

    def write() -> None:
        writing.release()
        release.wait(30)

    async def main() -> str:
        async with anyio.create_task_group() as group:
            for _ in range(agent_workers.AGENT_WORKERS):
                group.start_soon(lambda: agent_workers.run_for_agent(state, write, kind=agent_workers.WRITES))
            for _ in range(agent_workers.AGENT_WORKERS):
                with anyio.fail_after(30):
                    await anyio.to_thread.run_sync(writing.acquire)
            with anyio.fail_after(30):  # every write thread is busy; a read still gets one of its own
                answer = await agent_workers.run_for_agent(state, lambda: "read answered")
            release.set()
        return answer

    assert anyio.run(main) == "read answered"
    assert agent_workers.limiter_for(state.extras) is not agent_workers.limiter_for(state.extras, agent_workers.WRITES)


def test_sqlite_writes_get_one_thread_other_databases_more() -> None:
    sqlite_state = SimpleNamespace(extras={}, database=SimpleNamespace(backend="sqlite"))
    postgres_state = SimpleNamespace(extras={}, database=SimpleNamespace(backend="postgresql"))
    assert agent_workers.workers_for(sqlite_state, agent_workers.WRITES) == agent_workers.SQLITE_WRITE_WORKERS == 1
    assert agent_workers.workers_for(sqlite_state, agent_workers.READS) == agent_workers.AGENT_WORKERS
    assert agent_workers.workers_for(postgres_state, agent_workers.WRITES) == agent_workers.AGENT_WORKERS

    async def main() -> float:
        await agent_workers.run_for_agent(sqlite_state, lambda: None, kind=agent_workers.WRITES)
        return agent_workers.limiter_for(sqlite_state.extras, agent_workers.WRITES).total_tokens

    assert anyio.run(main) == 1
