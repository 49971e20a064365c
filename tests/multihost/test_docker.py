"""docs/deploy.md's Docker bridge setup, as documented, on one segment of the bed.

Three hosts of one segment stand in for three containers on one bridge. Each
runs what its documented ``docker run`` line runs (the image's ``CMD`` when
the line gives no command) with exactly the environment that line and the
image give it: the Dockerfile's ``ENV`` and the line's ``-e`` options, and
nothing of the test session's (``host_environment``). The documented ``curl``
lines then run on the payment's host, where the published port leads.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.bed import Bed, Host, host_environment
from tests.multihost.http import fetch, stop_all

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"
DOCKERFILE = ROOT / "examples" / "payment" / "k8s" / "Dockerfile"
IMAGE = "coterie-payment"


@dataclass
class Container:
    """What one documented ``docker run`` starts."""

    env: dict[str, str]
    argv: list[str]
    ports: list[str]


def _bridge_block() -> list[str]:
    """The commands of the "bridge network on one host" block, continuations joined."""
    section = DEPLOY.read_text().split("## Docker\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    (block,) = [b for b in blocks if "docker network create" in b]
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def _image() -> tuple[dict[str, str], list[str], set[str]]:
    """The Dockerfile's ``ENV``, its ``CMD`` and the extras it installs."""
    text = DOCKERFILE.read_text()
    env = dict(
        item.split("=", 1)
        for line in re.findall(r"^ENV (.+)$", text, flags=re.M)
        for item in shlex.split(line)
    )
    (cmd,) = re.findall(r"^CMD (\[.+\])$", text, flags=re.M)
    (extras,) = re.findall(r"pip install .*'\.\[([a-z,]+)\]'", text)
    return env, json.loads(cmd), set(extras.split(","))


def _containers(lines: list[str]) -> list[Container]:
    image_env, cmd, _ = _image()
    found = []
    for line in lines:
        words = shlex.split(line)
        if words[:2] != ["docker", "run"]:
            continue
        env, ports, rest = dict(image_env), [], words[2:]
        while rest[0].startswith("-"):
            option = rest.pop(0)
            if option in ("-e", "--env"):
                key, value = rest.pop(0).split("=", 1)
                env[key] = value
            elif option in ("-p", "--publish"):
                ports.append(rest.pop(0))
            elif option in ("--network", "--name"):
                rest.pop(0)
            else:
                assert option == "-d", f"an option this test does not know: {option}"
        assert rest.pop(0) == IMAGE
        found.append(Container(env, rest or cmd, ports))
    return found


def test_the_image_has_the_extras_the_services_use() -> None:
    _, _, extras = _image()
    assert {"http", "metrics"} <= extras


async def test_the_documented_bridge_setup_meets_and_pays(bed: Bed) -> None:
    lines = _bridge_block()
    containers = _containers(lines)
    assert len(containers) == 3 and len(containers[2].ports) == 1
    hosts: list[Host] = [bed["a1"], bed["a2"], bed["a3"]]
    started = []
    for host, container in zip(hosts, containers, strict=True):
        assert container.argv[0] == "python"
        started.append(
            await host.spawn(
                [sys.executable, *container.argv[1:]],
                env=host_environment(container.env),
                cwd=ROOT,  # the image's WORKDIR holds examples/ as the clone does
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    payment_host = hosts[2]
    try:
        # The documented curl lines, on the host the published port leads to.
        urls = [line.split()[1] for line in lines if line.startswith("curl ")]
        assert urls == ["127.0.0.1:3003/pay/4111111111111111", "127.0.0.1:3003/metrics"]
        bodies = await fetch(payment_host, *(f"http://{url}" for url in urls))
        paid, metrics = bodies.split("\n", 1)
        assert paid == '"4111111111111111 validated"'
        assert any(line.startswith("coterie_requests_total{") for line in metrics.splitlines())
        # The image's CMD serves probes on 8081: each validator is up and announced.
        for host in hosts[:2]:
            assert (await fetch(host, "http://127.0.0.1:8081/readyz")).strip() == "ready"
    finally:
        logs = await stop_all(started)
    # Each announced its own address on the "bridge"; one validator did the work.
    for host, log in zip(hosts, logs, strict=True):
        assert f"advertises {host.address}" in log, log
    assert any("validating 4111111111111111" in log for log in logs[:2]), logs
