"""``worker_redirect_stdouts``: what a task prints goes to the log, line by line."""
from __future__ import annotations

import logging
import sys
import threading
from typing import Iterator, List, Tuple

import pytest

from multiq import log

Record = Tuple[str, str, str]


@pytest.fixture
def records() -> Iterator[List[Record]]:
    seen: List[Record] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelname, record.threadName, record.getMessage()))

    logger = logging.getLogger("multiq.redirected")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.timeout(10)
def test_printed_lines_are_logged_at_the_level_then_the_streams_come_back(
        records: List[Record]) -> None:
    out, err = sys.stdout, sys.stderr
    with log.stdouts_to_log("WARNING"):
        print("Request: <Context: {'id': 'abc'}>")
        print("two", "words", "\nand a second line")
        print("", file=sys.stderr)  # a blank line is not worth a record
        sys.stderr.write("partial")
    assert sys.stdout is out and sys.stderr is err
    assert [message for _, _, message in records] == [
        "Request: <Context: {'id': 'abc'}>", "two words", "and a second line",
        "partial",  # flushed when the redirection ends
    ]
    assert {level for level, _, _ in records} == {"WARNING"}


@pytest.mark.timeout(10)
def test_threads_printing_at_once_keep_their_lines_whole(records: List[Record]) -> None:
    def chatter(word: str) -> None:
        for _ in range(200):
            print(word, word, word)  # four writes per line: three words and the end

    with log.stdouts_to_log("INFO"):
        threads = [threading.Thread(target=chatter, args=(w,), name=w) for w in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(records) == 400
    for level, thread_name, message in records:
        assert level == "INFO" and message == " ".join([thread_name] * 3)


@pytest.mark.timeout(10)
def test_logging_to_stderr_while_redirected_writes_to_the_real_stderr(
        capfd: pytest.CaptureFixture) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        with log.stdouts_to_log("WARNING"):
            log.setup("INFO")  # a pool child setting up its logging after the fork
            logging.getLogger("multiq.test").info("to the terminal")
            print("printed by a task")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    err = capfd.readouterr().err
    assert "INFO/MainProcess] to the terminal" in err
    assert "WARNING/MainProcess] printed by a task" in err  # once, not in a loop
    assert err.count("printed by a task") == 1
