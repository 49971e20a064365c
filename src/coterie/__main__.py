"""``python -m coterie``: the ``coterie`` command line."""

from coterie.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
