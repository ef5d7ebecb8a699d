"""The datum task table on a real SQLite root: leases, expiry, attempts, exactly-once completion."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tusk.pps.tasks import DONE, LOST, PENDING, Result, TaskTable
from tusk.storage.db import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _db(root: Path) -> Database:
    root.mkdir(parents=True, exist_ok=True)
    return Database(f"sqlite:///{root / 'meta.db'}")


@pytest.fixture
def table(tmp_path: Path) -> tuple[TaskTable, Clock]:
    clock = Clock()
    return TaskTable(_db(tmp_path / "root"), clock), clock


def enqueue(tt: TaskTable, job: int, n: int, tries: int = 3) -> None:
    with tt.db.tx() as conn:
        tt.enqueue(conn, job, [(f"d{i:04d}", f"h{i}", {"i": i}) for i in range(n)], tries)


def test_tasks_are_claimed_in_order_once_each(table: tuple[TaskTable, Clock]) -> None:
    tt, _ = table
    enqueue(tt, 1, 3)
    a = tt.claim("w1", 30)
    b = tt.claim("w2", 30)
    c = tt.claim("w1", 30)
    assert a is not None and b is not None and c is not None
    assert [a.datum_id, b.datum_id, c.datum_id] == ["d0000", "d0001", "d0002"]
    assert a.spec == {"i": 0} and a.tries == 3
    assert tt.claim("w3", 30) is None  # all leased


def test_enqueue_twice_keeps_what_is_there(table: tuple[TaskTable, Clock]) -> None:
    tt, _ = table
    enqueue(tt, 1, 2)
    task = tt.claim("w", 30)
    assert task is not None and tt.complete(task, Result("success", ["/a"]))
    enqueue(tt, 1, 3)  # a controller that died after enqueuing enqueues again
    assert tt.counts(1) == {DONE: 1, "success": 1, PENDING: 2}


def test_an_expired_lease_puts_the_task_back_and_the_attempt_counts(
        table: tuple[TaskTable, Clock]) -> None:
    tt, clock = table
    enqueue(tt, 1, 1, tries=2)
    first = tt.claim("w1", 30)
    assert first is not None and first.attempt == 1  # taking a task begins an attempt
    clock.now += 10
    assert tt.renew(first, 30)  # alive: renewing keeps it
    assert tt.claim("w2", 30) is None
    clock.now += 31  # w1 died: no renewal
    second = tt.claim("w2", 30)
    assert second is not None and second.datum_id == first.datum_id and second.attempt == 2
    assert not tt.renew(first, 30)  # w1 came back: its lease is gone
    assert not tt.complete(first, Result("success"))
    clock.now += 31  # w2 died too: both tries used by lost workers
    assert tt.claim("w3", 30) is None
    (done,) = list(tt.done(1))
    assert (done.result, done.reason, done.attempts) == ("failed", LOST, 2)


def test_a_retry_after_a_failed_attempt_is_counted_by_its_worker(
        table: tuple[TaskTable, Clock]) -> None:
    tt, _ = table
    enqueue(tt, 1, 1, tries=3)
    task = tt.claim("w1", 30)
    assert task is not None and task.attempt == 1
    task = tt.begin_attempt(task, 30)
    assert task is not None and task.attempt == 2
    assert tt.complete(task, Result("failed", reason="exit 1"))
    (done,) = list(tt.done(1))
    assert (done.result, done.attempts) == ("failed", 2)


def test_only_the_lease_holder_completes(table: tuple[TaskTable, Clock]) -> None:
    tt, clock = table
    enqueue(tt, 1, 1)
    a = tt.claim("w1", 5)
    clock.now += 6
    b = tt.claim("w2", 5)
    assert a is not None and b is not None
    assert not tt.complete(a, Result("success", ["/from-a"]))
    assert tt.complete(b, Result("success", ["/from-b"]))
    assert not tt.complete(b, Result("failed"))  # completes once
    (done,) = list(tt.done(1))
    assert done.outputs == ["/from-b"] and done.result == "success"


def test_release_gives_the_task_back_without_counting(table: tuple[TaskTable, Clock]) -> None:
    tt, _ = table
    enqueue(tt, 1, 1)
    task = tt.claim("w1", 30)
    assert task is not None and tt.release(task)
    again = tt.claim("w2", 30)
    assert again is not None and again.attempt == 1  # the released attempt did not count


def test_cancel_and_drop_settle_and_forget_a_job(table: tuple[TaskTable, Clock]) -> None:
    tt, _ = table
    enqueue(tt, 1, 3)
    enqueue(tt, 2, 1)
    held = tt.claim("w", 30, jobs=[1])
    assert held is not None
    with tt.db.tx() as conn:
        assert tt.cancel(conn, 1, "the job was stopped") == 3
    assert not tt.complete(held, Result("success"))
    assert tt.claim("w", 30, jobs=[1]) is None
    with tt.db.tx() as conn:
        tt.drop(conn, 1)
    assert tt.counts(1) == {}
    assert tt.counts(2) == {PENDING: 1}


def _worker(root: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    tt = TaskTable(_db(Path(root)))
    done = []
    while (task := tt.claim(name, 30)) is not None:
        if tt.complete(task, Result("success", [name])):
            done.append(task.datum_id)
    out.put(done)


def test_racing_worker_processes_complete_each_task_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tt = TaskTable(_db(root))
    enqueue(tt, 7, 300)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(root), f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    everyone = [d for part in got for d in part]
    assert sorted(everyone) == [f"d{i:04d}" for i in range(300)]  # each once, none lost
    assert tt.counts(7) == {DONE: 300, "success": 300}
    by = {d.datum_id: d.outputs[0] for d in tt.done(7, batch=64)}
    assert len(by) == 300 and len({w for w in by.values()}) >= 1
