"""The payment example as ``examples/payment/k8s/`` deploys it, on two segments of the bed.

The same commands (``coterie run`` of each module's ``service``) and variables as
the manifests: each pod announces its own
address (the downward API's pod IP there), and its seed is the short name of
a headless Service (here dnsmasq's ``payment-mesh.bed.test``, found through the
hosts' search domain). A payment made on one segment is validated on the
other, across the router.
"""

from __future__ import annotations

import asyncio
import sys

from tests.bed import Bed, Host, host_environment
from tests.multihost.http import fetch, stop_all
from tests.multihost.servers import Dnsmasq

CARD = "4111111111111111"


def _pod_env(host: Host) -> dict[str, str]:
    return host_environment({
        "COTERIE_ADVERTISE_ADDRESS": host.address,  # status.podIP in the manifests
        "COTERIE_DISCOVERY_SEEDS": "payment-mesh",
        "COTERIE_DISCOVERY_SEED_INTERVAL": "5000",
    })  # fmt: skip


async def test_a_payment_is_validated_across_the_router(bed: Bed, dns: Dnsmasq) -> None:
    validation_host, payment_host, client = bed["a1"], bed["b1"], bed["a2"]
    await dns.start({"payment-mesh": [validation_host, payment_host]})
    services = [
        await validation_host.spawn(
            [sys.executable, "-m", "coterie", "run", "examples.payment.validation_service:service",
             "--health-port", "8081"],
            env=_pod_env(validation_host),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        ),
        await payment_host.spawn(
            [sys.executable, "-m", "coterie", "run", "examples.payment.payment_service:service",
             "--health-port", "8081"],
            env=_pod_env(payment_host),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        ),
    ]  # fmt: skip
    try:
        # A payment waits for a validator (the example's --timeout), so one
        # request made as soon as the HTTP port answers is enough.
        url = f"http://{payment_host.address}:3003/pay/{CARD}"
        assert (await fetch(client, url)).strip() == f'"{CARD} validated"'
        # The manifests' httpGet probes: both pods ready (the payment's validator is linked).
        for host in (validation_host, payment_host):
            assert (await fetch(client, f"http://{host.address}:8081/readyz")).strip() == "ready"
    finally:
        logs = await stop_all(services)
    validation_log, payment_log = logs
    assert f"advertises {validation_host.address}" in validation_log, validation_log
    assert f"validating {CARD}" in validation_log, validation_log
    assert f"advertises {payment_host.address}" in payment_log, payment_log
