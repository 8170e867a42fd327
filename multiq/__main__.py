"""``python -m multiq`` and the ``multiq`` script: a green pool's patching comes first."""
from __future__ import annotations


def main() -> None:
    from multiq.patching import maybe_patch_concurrency

    maybe_patch_concurrency()  # before click, redis or any user of threads is imported
    from multiq.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
