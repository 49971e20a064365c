"""Compiled request-path modules, chosen at import in this one place (internal).

Design: the build (``hatch_build.py``, run by ``make setup`` and ``pip
install``) compiles the modules listed in ``pyproject.toml``
(``[tool.hatch.build.hooks.custom] modules``) with mypyc, from the very same
source, and puts the extensions in ``coterie/_compiled/`` under their full
dotted names (``coterie.protocol.framing.cpython-311-x86_64-linux-gnu.so``)
beside a ``manifest`` that holds the size and CRC-32 of each module's source
(one ``module size crc`` line each; no hashlib, json or pathlib, which a
plain responder does not otherwise load).
They never sit beside the ``.py`` files, so nothing shadows the pure-Python
source. :func:`install`, called first thing by ``coterie/__init__.py``, puts
a finder in front of ``sys.meta_path`` that loads the compiled module in
place of the source, for each module of the manifest whose source is
unchanged since the build. So:

- ``COTERIE_NO_EXTENSIONS=1`` (any non-empty value but ``0``) runs pure
  Python: no finder is installed;
- no compiler at build time, an interpreter the extensions were not built
  for, or any compiled module's source edited since the build: every module
  runs as pure Python (all or nothing, since compiled modules call each
  other natively; a stale source is logged at WARNING, rebuild with ``make
  native``);
- ``COTERIE_REQUIRE_EXTENSIONS=1`` (CI) turns each of those fallbacks into an
  ``ImportError``, so a build that silently lost its compiled modules fails.

:func:`describe` says which modules run compiled, or why none does;
``coterie --version``, the pytest header and the bench header print it.
:func:`stale` says what to fix when a build exists but does not run; ``make
test``'s compiled run and the bench fail on it rather than fall back silently.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["COMPILED", "PROBLEM", "describe", "fingerprint", "install", "read_manifest", "stale"]

log = logging.getLogger("coterie")

#: Where the build puts the extensions and their manifest.
DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_compiled")
MANIFEST = os.path.join(DIRECTORY, "manifest")
#: The module mypyc's shared runtime code is built as (one for the whole group).
RUNTIME = "coterie_native__mypyc"

#: Module name -> extension path, for the modules running compiled.
COMPILED: dict[str, str] = {}


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _suffix() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def _source(module: str) -> str:
    root = os.path.dirname(os.path.dirname(DIRECTORY))
    return os.path.join(root, *module.split(".")) + ".py"


def fingerprint(path: str) -> str:
    """``size crc32`` of a file: what the manifest records of each source.

    ``binascii.crc32`` is ``zlib.crc32`` (the build uses the latter), and
    binascii is loaded anyway (by base64); zlib would not be.
    """
    import binascii

    with open(path, "rb") as f:
        data = f.read()
    return f"{len(data)} {binascii.crc32(data):08x}"


def read_manifest(path: str) -> dict[str, str]:
    """Module name -> fingerprint of its source when it was compiled."""
    with open(path, encoding="utf-8") as f:
        rows = (line.split(maxsplit=1) for line in f if line.strip())
        return {row[0]: row[1].strip() for row in rows if len(row) == 2}


class _Finder:
    """Finds the compiled extension of each module in :data:`COMPILED`.

    A plain meta path finder: ``importlib.abc`` would load ``importlib.resources``
    and with it pathlib and tempfile, which a plain responder does without.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        location = COMPILED.get(fullname)
        if location is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, location)
        spec = importlib.machinery.ModuleSpec(fullname, loader, origin=location)
        spec.has_location = True  # sets the module's __file__
        return spec


def _fail(reason: str) -> None:
    if _flag("COTERIE_REQUIRE_EXTENSIONS"):
        raise ImportError(
            f"coterie's compiled modules are required (COTERIE_REQUIRE_EXTENSIONS) "
            f"but {reason}; rebuild them with `make native` (needs gcc)"
        )


def _scan() -> tuple[dict[str, str], str | None]:
    """The extensions to load, or why the build there is cannot be used.

    Returns:
        ``(found, problem)``: module name -> extension path and ``None``
        when the build is usable; ``({}, None)`` when there is no build at
        all (no compiler, or a pure build); ``({}, reason)`` for a build
        that exists but would run stale or not at all.
    """
    try:
        manifest = read_manifest(MANIFEST)
    except OSError:
        return {}, None
    suffix = _suffix()
    runtime = os.path.join(DIRECTORY, f"{RUNTIME}{suffix}")
    if not os.path.exists(runtime):
        return {}, f"{runtime} is missing (built for another interpreter?)"
    found: dict[str, str] = {}
    for module, digest in sorted(manifest.items()):
        extension = os.path.join(DIRECTORY, f"{module}{suffix}")
        source = _source(module)
        if not os.path.exists(extension):
            return {}, f"{extension} is missing"
        if not os.path.exists(source) or fingerprint(source) != digest:
            # All or nothing: compiled modules call each other natively, so one
            # rebuilt from stale source next to a pure one would run old code.
            return {}, f"{source} changed since it was compiled"
        found[module] = extension
    if not found:
        return {}, f"{MANIFEST} lists no module"
    found[RUNTIME] = runtime
    return found, None


#: Why the build that exists is not running (a stale source, a missing
#: extension), or ``None``: compiled, or no build at all.
PROBLEM: str | None = None


def install() -> None:
    """Load the compiled modules from now on, unless pure Python is asked for (idempotent)."""
    global PROBLEM
    if COMPILED or _flag("COTERIE_NO_EXTENSIONS"):
        return
    found, PROBLEM = _scan()
    if PROBLEM is not None:
        log.warning("%s: running every module as pure Python (rebuild with `make native`)", PROBLEM)
        _fail(PROBLEM)
        return
    if not found:
        _fail(f"there is no build manifest at {MANIFEST}")
        return
    COMPILED.update(found)
    sys.meta_path.insert(0, _Finder())


def describe() -> str:
    """Which build is running: the compiled modules, or pure Python and why."""
    names = sorted(m.removeprefix("coterie.") for m in COMPILED if m != RUNTIME)
    if names:
        return "compiled with mypyc: " + ", ".join(names)
    if _flag("COTERIE_NO_EXTENSIONS"):
        return "pure Python (COTERIE_NO_EXTENSIONS)"
    if PROBLEM is not None:
        return f"pure Python, though a build exists: {PROBLEM} (rebuild with `make native`)"
    return "pure Python (no compiled modules built)"


def stale() -> str | None:
    """What to fix when a build exists but is not what runs; ``None`` when all is well.

    ``make test`` (``scripts/check_native.py``) checks it before its compiled
    run and the bench before measuring, so an edit to a compiled module
    without ``make native`` fails there rather than running pure Python
    unnoticed. No build at all (no C compiler) is not stale: pure Python is
    what such a machine runs (``COTERIE_REQUIRE_EXTENSIONS`` has already
    failed the import there). Nor is a stale build under
    ``COTERIE_NO_EXTENSIONS``, which asks for pure Python.
    """
    if PROBLEM is None or _flag("COTERIE_NO_EXTENSIONS"):
        return None
    return (
        f"{PROBLEM}: the compiled build is stale; rebuild it with `make native` "
        "(or set COTERIE_NO_EXTENSIONS=1 to run pure Python on purpose)"
    )


install()
