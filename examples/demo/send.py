"""Send a few tasks to the demo worker and print what comes back.

Exits 0 when every result is the expected one, 1 otherwise.
"""
import sys
import time

from demo import add, fail, my_task

TIMEOUT = 15.0
problems = []


def raised_boom(exc):
    """The failing task's error: its ValueError, or a TaskError naming it."""
    return "boom" in str(exc) and (
        isinstance(exc, ValueError) or type(exc).__name__ == "TaskError"
    )


def show(label, res, expected):
    """Wait for ``res`` and print its id, status and result (or exception).

    ``expected`` is the value, or a function that accepts the exception raised.
    """
    try:
        value = res.get(timeout=TIMEOUT)
    except Exception as exc:  # the failing task lands here, and so would a timeout
        outcome = f"{type(exc).__name__}: {exc}"
        ok = callable(expected) and expected(exc)
    else:
        outcome = repr(value)
        ok = value == expected
    print(f"{label:<24} {res.id}  {res.status:<8} {outcome}")
    if not ok:
        want = expected.__doc__ if callable(expected) else repr(expected)
        problems.append(f"{label}: expected {want}, got {outcome}")


def main():
    start = time.monotonic()
    res = my_task.delay("Zhang San", 13)
    print(f"sent my_task in {time.monotonic() - start:.3f}s; id {res.id}, status {res.status}")
    show("my_task('Zhang San', 13)", res, "name is Zhang San, age is 13")

    show("add(2, 3)", add.delay(2, 3), 5)

    start = time.monotonic()
    batch = [my_task.delay(f"user{i}", 20 + i) for i in range(4)]
    for i, res in enumerate(batch):
        show(f"my_task('user{i}', {20 + i})", res, f"name is user{i}, age is {20 + i}")
    print(f"4 x my_task (1 s each) done in {time.monotonic() - start:.1f}s")

    show("fail('boom')", fail.delay("boom"), raised_boom)

    start = time.monotonic()
    res = add.apply_async((40, 2), countdown=2)
    show("add(40, 2) countdown=2", res, 42)
    waited = time.monotonic() - start
    print(f"countdown task finished after {waited:.1f}s")
    if waited < 1.9:
        problems.append(f"countdown=2 task finished after only {waited:.1f}s")

    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
