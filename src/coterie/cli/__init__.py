"""The ``coterie`` command: one argparse subcommand per module.

Design: :data:`COMMANDS` lists the subcommand modules of this package, in
help order. Each module defines ``register(subparsers)``, which adds its
parser and sets ``run`` (``args -> exit code``) with ``set_defaults``. Adding a
subcommand is one module plus one entry here. Modules are imported when the
parser is built, and keep their heavy imports (rich) inside ``run`` so
``coterie --help`` stays fast. Subcommand parsers are
:class:`_SubcommandParser` instances, so an option a subcommand does not know is
reported with that subcommand's usage, not the top-level one.

The payment example and its demo (``make demo``) and the benchmarks (``make
bench``) live in the repository's ``examples/`` and ``bench/``, not here.

``-q`` and ``-v`` go before or after the subcommand (``coterie -q call ...``
or ``coterie call -q ...``): each subcommand's parser has them too, with a
suppressed default, so a flag given before is not reset after.

Errors: a usage mistake is argparse's usage and one ``error:`` line (exit
2); any other failure a subcommand does not report itself is one line,
``coterie COMMAND: error: ...``, and exit 1 (``-v`` shows the traceback).

Internal: the subcommand modules are not an API; :func:`main` is the entry
point.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from coterie import _native
from coterie._version import __version__
from coterie.errors import CoterieError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand modules under ``coterie.cli``, in help order.
COMMANDS: tuple[str, ...] = (
    "run",
    "call",
    "publish",
    "listen",
    "services",
    "bench",
    "announce",
    "nginx",
    "monitor",
    "certs",
    "doctor",
)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: arguments it does not know are its own usage error.

    argparse hands a subparser's unrecognised arguments back to the top-level
    parser, which then prints the top-level usage; this reports them here.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The ``coterie`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="coterie",
        description="Zero-configuration microservices for asyncio, wire-compatible with cote.",
    )
    parser.add_argument(
        "--version", action="version", version=f"coterie {__version__} ({_native.describe()})"
    )
    _add_log_flags(parser, default=False)
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", parser_class=_SubcommandParser
    )
    for name in COMMANDS:
        module = importlib.import_module(f"coterie.cli.{name}")
        module.register(subparsers)
    # -q and -v also after the subcommand (and its action: certs init -q); there they
    # default to what came before it.
    for sub in _subcommand_parsers(parser):
        _add_log_flags(sub, default=argparse.SUPPRESS)
    return parser


def _subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser``'s subcommands, nested ones included, once each."""
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for each in (sub, *_subcommand_parsers(sub)):
                    found.setdefault(id(each), each)
    return list(found.values())


def _add_log_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    group = parser.add_argument_group("logging") if default is argparse.SUPPRESS else parser
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log debug messages"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coterie`` command line; returns the exit code.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        code = run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure is one line; -v shows the traceback
        if args.verbose:
            raise
        sub = getattr(args, "_parser", None)  # args.command may be announce's command
        prog = sub.prog if sub is not None else f"coterie {run.__module__.rsplit('.', 1)[-1]}"
        sys.stderr.write(f"{prog}: error: {_one_line(exc)}\n")
        return 1
    return int(code)


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError | ValueError | CoterieError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
