"""A prefork child's shared-memory slot (``multiq.pools.slots``): what the child writes, its
node reads whole, across a real fork, never half of one write and half of the next."""
from __future__ import annotations

import os

import pytest

from multiq.pools.slots import IDLE, PREPARING, RUNNING, SLOT_SIZE, SlotTable


def test_each_state_reads_back_as_written() -> None:
    table = SlotTable(4)
    slot = table.slot(2)
    slot.reset(1234)
    assert table.read(2).pid == 1234 and table.read(2).state == IDLE
    slot.preparing(b"1-1", "q", 3)
    view = table.read(2)
    assert (view.state, view.entry, view.queue, view.band) == (PREPARING, b"1-1", "q", 3)
    slot.running(b"1-2", "q", 9, "task-id", True, 2.5)
    slot.reserved(3)
    view = table.read(2)
    assert (view.state, view.entry, view.task_id, view.early_ack) == (RUNNING, b"1-2",
                                                                       "task-id", True)
    assert view.hard == 2.5 and view.deadline == pytest.approx(view.since + 2.5)
    assert view.reserved == 3 and view.start > 0
    slot.idle(1)
    view = table.read(2)
    assert (view.state, view.reserved, view.entry, view.task_id) == (IDLE, 1, b"", "")
    slot.clear()
    assert table.read(2).pid == 0


def test_long_names_are_cut_not_spilled_into_the_next_field() -> None:
    table = SlotTable(2)
    slot = table.slot(1)
    slot.reset(1)
    slot.running(b"9" * 100, "q" * 500, 0, "t" * 500, False, None)
    view = table.read(1)
    assert view.entry == b"9" * 39 and view.queue == "q" * 189 and view.task_id == "t" * 189
    assert view.deadline == 0.0
    assert table.read(2).pid == 0  # the neighbour is untouched


def test_a_busy_child_sees_whether_a_sibling_is_idle() -> None:
    table = SlotTable(3)
    for index in (1, 2):
        table.slot(index).reset(100 + index)
    table.slot(1).running(b"1-1", "q", 0, "a", True, None)
    assert not table.others_busy(1, [1, 2, 3])  # 2 is idle (3 has no child)
    table.slot(2).running(b"1-2", "q", 0, "b", True, None)
    assert table.others_busy(1, [1, 2, 3])


@pytest.mark.timeout(30)
def test_reads_across_fork_are_never_torn() -> None:
    table = SlotTable(1)
    slot = table.slot(1)
    slot.reset(os.getpid())
    pid = os.fork()
    if pid == 0:  # the child: write many running states whose fields agree with each other
        try:
            for i in range(20000):
                slot.running(f"{i}-0".encode(), f"q{i}", i % 10, f"t{i}", bool(i % 2), None)
        finally:
            os._exit(0)
    seen = 0
    while True:
        view = table.read(1)
        if view.state == RUNNING:
            i = int(view.entry.split(b"-")[0])
            assert (view.queue, view.task_id, view.band, view.early_ack) == (
                f"q{i}", f"t{i}", i % 10, bool(i % 2))
            seen += 1
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    assert seen


@pytest.mark.timeout(30)
def test_the_sequence_number_only_ever_grows_while_a_child_writes() -> None:
    # A read is accepted when the sequence number is even and unchanged across it; a write
    # that let the number pass through any earlier value (0 included) would let a read mix
    # two writes.
    table = SlotTable(1)
    slot = table.slot(1)
    slot.reset(os.getpid())
    words = memoryview(table._mem).cast("q")
    pid = os.fork()
    if pid == 0:
        try:
            for i in range(20000):
                slot.running(f"{i}-0".encode(), "q", i % 10, "t", True, None)
                slot.reserved(i % 3)
        finally:
            os._exit(0)
    last = samples = 0
    while not os.waitpid(pid, os.WNOHANG)[0]:
        seq = words[SLOT_SIZE // 8]  # slot 1's first word
        assert seq >= last
        last, samples = seq, samples + 1
    # reset, then 20,000 writes and 19,999 changes of the reserved count, two steps each
    assert samples and words[SLOT_SIZE // 8] == 2 + 2 * 20000 + 2 * 19999
