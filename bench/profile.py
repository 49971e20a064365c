"""Profile coterie's requester and responder under the 100-in-flight load.

    python -m bench.profile [--seconds 5] [--concurrency 100] [--out DIR]

Design: the same worker processes as the bench (coterie only, host scope,
no Node, so no namespace is needed). While the requester runs a long bench,
``py-spy record`` samples both processes for ``--seconds`` (non-blocking, so
the processes are not paused; samples aggregated by function), writing
folded stacks for each (render them with ``flamegraph.pl`` or speedscope).
The summary prints, per process, the functions with the most samples where
they are on top of the stack (self) and anywhere on it (inclusive). The
bench request count is bounded, and every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
from pathlib import Path

from bench.proc import Group, Impl
from bench.scenarios.common import bench, start_requester, start_responders


def summarize(folded: Path, top: int) -> str:
    """Top self and inclusive frames of a py-spy raw (folded) profile."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples", "  self:"]
    lines += [f"    {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top + 10)]
    return "\n".join(lines)


async def profile(seconds: float, concurrency: int, out: Path, top: int) -> int:
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    impl = Impl("coterie", "profile-coterie")
    async with Group() as group:
        (rep,) = await start_responders(group, impl, 1)
        req = await start_requester(group, impl, 1, 3000)
        n = int(60_000 * (seconds + 4))  # bounded: outlasts the sampling window
        task = asyncio.ensure_future(bench(req, n, concurrency, timeout_ms=10000))
        await asyncio.sleep(1.0)  # steady state
        spies = []
        for name, proc in (("requester", req), ("responder", rep)):
            argv = [spy, "record", "--nonblocking", "--function", "-r", "250"]
            argv += ["-d", str(int(seconds)), "-f", "raw", "-o", str(out / f"{name}.txt")]
            spy_proc = await asyncio.create_subprocess_exec(
                *argv,
                "--pid",
                str(proc.pid),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            spies.append(spy_proc)
        async with asyncio.timeout(seconds + 30):
            await asyncio.gather(*(s.wait() for s in spies))
        result = await asyncio.wait_for(task, timeout=120)
    rate = (result["n"] - result["errors"]) / result["seconds"]
    print(f"load: {result['n']} requests, {concurrency} in flight, {rate:,.0f} req/s overall")
    for name in ("requester", "responder"):
        print(f"\n{name} ({out / (name + '.txt')}):")
        print(summarize(out / f"{name}.txt", top))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Profile; 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="sampling window")
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight")
    parser.add_argument("--out", type=Path, default=Path("/tmp/coterie-profile"))
    parser.add_argument("--top", type=int, default=15, help="frames to list")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(profile(args.seconds, args.concurrency, args.out, args.top))


if __name__ == "__main__":
    sys.exit(main())
