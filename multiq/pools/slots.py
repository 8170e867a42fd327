"""What each prefork child is doing, in shared memory its node reads without asking it.

One anonymous shared mapping, made before the first fork, holds a fixed-size slot per
child index. Only the child writes its slot: its pid, its state (idle, preparing a
fetched entry, running a task), the entry and task id it works on, when that started, its
hard deadline, how many messages it holds unstarted. The node reads any slot at any time
(time limits, ``revoke --terminate``, ``inspect active``, autoscale, and after a child's
death, which entry it died on); a sequence number, odd while the child writes, makes each
read consistent (a seqlock). Children read their siblings' slots too: a busy child tops
up its prefetch only while none of its siblings is idle.
"""
from __future__ import annotations

import mmap
import os
import struct
import time
from typing import List, NamedTuple, Optional

IDLE, PREPARING, RUNNING = 0, 1, 2

# seq, pid, state, reserved, early_ack, band, since (monotonic), start (wall),
# deadline (monotonic, 0: none), hard (s), then entry id, queue, task id (length-prefixed)
_HEAD = struct.Struct("=qqqqqqdddd")
_TEXT = (40, 190, 190)
_BODY = struct.Struct("=qqqqqddddB39sB189sB189s")  # the head after seq, then each text
# The sequence number is stored and loaded as one aligned 8-byte word through a memoryview:
# ``struct.pack_into`` zero-fills its span before writing, so packing the sequence number
# would make it 0 (even, "complete") for a moment in every write.
_SEQ_WORD, _RESERVED_WORD = 0, 3
SLOT_SIZE = 512
STUCK = 0.2  # seconds a write may seem to last before asking whether its writer is gone
MAX_CHILDREN = 1024


class SlotView(NamedTuple):
    """One consistent read of a slot."""

    pid: int
    state: int
    reserved: int
    early_ack: bool
    band: int
    since: float
    start: float
    deadline: float
    hard: float
    entry: bytes
    queue: str
    task_id: str


class SlotTable:
    """The slots of every child index (1-based), shared across fork."""

    def __init__(self, size: int = MAX_CHILDREN) -> None:
        self.size = size
        self._mem = mmap.mmap(-1, SLOT_SIZE * (size + 1))
        self._words = memoryview(self._mem).cast("q")

    def slot(self, index: int) -> Slot:
        if not 0 < index <= self.size:
            raise ValueError(f"no slot for child {index} (at most {self.size} children)")
        return Slot(self._mem, self._words, index * SLOT_SIZE)

    def read(self, index: int) -> SlotView:
        return self.slot(index).read()

    def others_busy(self, index: int, indexes: List[int]) -> bool:
        """(A child.) Whether every other live child of ``indexes`` is busy."""
        for other in indexes:
            if other != index:
                view = self.read(other)
                if view.pid and view.state == IDLE:
                    return False
        return True


class Slot:
    """One child's slot: written by the child, read by anyone."""

    def __init__(self, mem: mmap.mmap, words: memoryview, offset: int) -> None:
        self._mem, self._words, self._offset = mem, words, offset
        self._word = offset // 8 + _SEQ_WORD  # the sequence number's index in ``words``
        self._seq = 0
        self._pid = 0
        self._reserved = 0

    def reset(self, pid: int) -> None:
        """(The child, first.) A fresh slot for this process."""
        self._seq = (self._words[self._word] + 1) & ~1
        self._pid = pid
        self._write(IDLE, 0, False, 0, 0.0, 0.0, 0.0, b"", "", "")

    def clear(self) -> None:
        """(The node, once the child is gone and dealt with.)"""
        self._mem[self._offset:self._offset + SLOT_SIZE] = bytes(SLOT_SIZE)

    def preparing(self, entry: bytes, queue: str, band: int) -> None:
        self._write(PREPARING, band, False, 0, 0.0, 0.0, 0.0, entry, queue, "")

    def running(self, entry: bytes, queue: str, band: int, task_id: str, early_ack: bool,
                hard: Optional[float], reserved: Optional[int] = None) -> None:
        if reserved is not None:
            self._reserved = reserved
        now = time.monotonic()
        self._write(RUNNING, band, early_ack, now, time.time(), now + hard if hard else 0.0,
                    hard or 0.0, entry, queue, task_id)

    def idle(self, reserved: int) -> None:
        self._reserved = reserved
        self._write(IDLE, 0, False, time.monotonic(), 0.0, 0.0, 0.0, b"", "", "")

    def reserved(self, count: int) -> None:
        """The number of messages held unstarted (kept with whatever else the slot says)."""
        if count != self._reserved:
            self._reserved = count
            words, at = self._words, self._word
            self._seq += 1
            words[at] = self._seq
            words[at + _RESERVED_WORD] = count
            self._seq += 1
            words[at] = self._seq

    def _write(self, state: int, band: int, early_ack: bool, since: float, start: float,
               deadline: float, hard: float, entry: bytes, queue: str, task_id: str) -> None:
        words, at = self._words, self._word
        self._seq += 1  # odd: being written
        words[at] = self._seq
        entry, name, task = entry[:39], queue.encode()[:189], task_id.encode()[:189]
        _BODY.pack_into(self._mem, self._offset + 8, self._pid, state, self._reserved,
                        early_ack, band, since, start, deadline, hard, len(entry), entry,
                        len(name), name, len(task), task)
        self._seq += 1
        words[at] = self._seq

    def read(self) -> SlotView:
        mem, off, words, at = self._mem, self._offset, self._words, self._word
        since, last = 0.0, -1
        while True:
            seq = words[at]
            head = _HEAD.unpack_from(mem, off)
            raw = mem[off + _HEAD.size:off + SLOT_SIZE]
            if seq % 2 == 0 and words[at] == seq:
                break
            if seq != last:
                since, last = time.monotonic(), seq
            elif time.monotonic() - since > STUCK and _gone(head[1]):
                break  # its child was killed while writing (a live one only paused)
            time.sleep(0)
        texts, pos = [], 0
        for room in _TEXT:
            n = min(raw[pos], room - 1)
            texts.append(raw[pos + 1:pos + 1 + n])
            pos += room
        _, pid, state, reserved, early, band, since, start, deadline, hard = head
        return SlotView(pid, state, reserved, bool(early), band, since, start, deadline, hard,
                        bytes(texts[0]), texts[1].decode(errors="replace"),
                        texts[2].decode(errors="replace"))


def _gone(pid: int) -> bool:
    """Whether the process ``pid`` (a slot's writer) has ended: exited, or a zombie."""
    if pid <= 0:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
