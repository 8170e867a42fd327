"""``python -m multiq``."""
from multiq.cli import main

if __name__ == "__main__":
    main()
