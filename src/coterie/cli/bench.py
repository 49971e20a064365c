"""``coterie bench``: the benchmarks against Node cote, from a source checkout.

Design: the bench lives in the repository's top-level ``bench`` package (it
drives Node, nginx and wrk, so it is not shipped in the wheel). This
subcommand finds that package next to the installed sources, or on
``sys.path``, and hands it every argument unchanged, so ``coterie bench
--smoke`` is ``python -m bench --smoke`` and ``coterie bench --help`` shows
the bench's own options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from coterie.cli._common import Subparsers

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> None:
    """Add the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark coterie against Node cote 1.2.0 and nginx (source checkout only)",
        description="Run the benchmarks; every argument goes to `python -m bench`.",
        add_help=False,
        prefix_chars="+",  # every "-option" is passed through untouched
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of python -m bench")
    parser.set_defaults(run=run)


def _checkout_root() -> Path | None:
    """The repository root when running from a source checkout (src layout)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "bench" / "__main__.py").is_file() else None


def run(args: argparse.Namespace) -> int:
    """Run the bench package's ``main`` with the passed-through arguments."""
    root = _checkout_root()
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("bench.__main__")
    except ImportError:
        print(
            "coterie bench needs a source checkout of coterie (the bench/ directory); "
            "clone the repository and run `make bench`",
            file=sys.stderr,
        )
        return 2
    return int(module.main(list(args.bench_args)))
