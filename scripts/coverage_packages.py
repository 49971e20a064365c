"""Print line coverage per package of coterie from a coverage data file.

Usage: ``python scripts/coverage_packages.py [DATA_FILE]`` after
``coverage run -m pytest``. One row per package (``coterie/protocol``,
``coterie/transport``, ...; top-level modules as ``coterie``), then the total.
It only reports; the protocol package's own bound is checked by ``make test``
(``tests/protocol`` alone must cover it fully).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage


def main(data_file: str = ".coverage") -> int:
    """Read ``data_file`` and print statements, missed and percent per package."""
    cov = coverage.Coverage(data_file=data_file)
    cov.load()
    data = cov.get_data()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name in sorted(data.measured_files()):
        path = Path(name)
        if "coterie" not in path.parts or path.suffix != ".py":
            continue
        parts = path.parts[path.parts.index("coterie") :]
        package = "/".join(parts[:2]) if len(parts) > 2 else "coterie"
        _, statements, _, missing, _ = cov.analysis2(name)
        totals[package][0] += len(statements)
        totals[package][1] += len(missing)
    width = max((len(p) for p in totals), default=10)
    print(f"{'package':<{width}}  stmts   miss   cover")
    all_stmts = all_miss = 0
    for package, (stmts, miss) in sorted(totals.items()):
        all_stmts, all_miss = all_stmts + stmts, all_miss + miss
        print(f"{package:<{width}}  {stmts:5}  {miss:5}  {_percent(stmts, miss):>6}")
    print(f"{'total':<{width}}  {all_stmts:5}  {all_miss:5}  {_percent(all_stmts, all_miss):>6}")
    return 0


def _percent(stmts: int, miss: int) -> str:
    return f"{100 * (stmts - miss) / stmts:.1f}%" if stmts else "-"


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
