"""Say which coterie build runs; exit 1 when a compiled build exists but is stale.

``make test`` runs it before its compiled run (``coterie._native.stale``):
an edit to a compiled module without ``make native`` fails there instead of
running, unnoticed, as pure Python. A machine without a C compiler has no
build, runs pure Python and passes.
"""

from __future__ import annotations

import sys

from coterie import _native


def main() -> int:
    """Print the build; 1 when it is stale."""
    print(f"coterie build: {_native.describe()}")
    problem = _native.stale()
    if problem is not None:
        print(f"coterie build: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
