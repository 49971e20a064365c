"""etcd discovery against a secured etcd: TLS with client certificates, users and passwords.

One real etcd (tests/etcd_server.py) serves the module, secured as a managed
etcd is: TLS, ``--client-cert-auth``, and authentication enabled with a user
that may use the discovery prefix only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coterie import DiscoveryOptions, EtcdSettings, Requester, Responder
from coterie.protocol.groups import node_key
from tests.etcd_server import ETCD, EtcdServer, EtcdTLS
from tests.helpers import MS, ms

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(ETCD is None, reason="etcd is not installed (etcd-server)"),
]

USER, PASSWORD = "mesh-user", "s3cret pass"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """An etcd with TLS, client certificates and authentication, for the module."""
    tls = EtcdTLS.make(tmp_path_factory.mktemp("etcd-tls"))
    server = EtcdServer(tls=tls)
    server.start()
    try:
        server.enable_auth({USER: PASSWORD})
        yield server
    finally:
        server.close()


def access(server: EtcdServer, **overrides: Any) -> EtcdSettings:
    """Settings that reach ``server`` with its CA, the client certificate and the user."""
    assert server.tls is not None
    fields: dict[str, Any] = {
        "ca": server.tls.ca,
        "cert": server.tls.client_cert,
        "key": server.tls.client_key,
        "user": USER,
        "password": PASSWORD,
    }
    fields.update(overrides)
    return EtcdSettings((server.url,), **fields)


def discovery(etcd: EtcdSettings) -> DiscoveryOptions:
    """Fast timings (a 2 s lease, etcd's least) and no log lines."""
    return DiscoveryOptions(
        etcd=etcd, hostname="127.0.0.1", log=False, hello_interval=ms(100),
        check_interval=ms(200), node_timeout=2000, master_timeout=2500,
    )  # fmt: skip


def keys(server: EtcdServer) -> list[str]:
    """The keys under /coterie/, read as root."""
    body = {"key": base64.b64encode(b"/coterie/").decode(),
            "range_end": base64.b64encode(b"/coterie0").decode(), "keys_only": True}  # fmt: skip
    answer = server.call("/v3/kv/range", body, server.root_token)
    return [base64.b64decode(kv["key"]).decode() for kv in answer.get("kvs", [])]


async def test_a_mesh_registers_in_an_etcd_with_tls_certificates_and_users(
    secured: EtcdServer,
) -> None:
    disc = discovery(access(secured))
    async with (
        Requester(name="secured req", discovery=disc, timeout=5_000 * MS) as req,
        Responder(name="secured rep", discovery=disc) as rep,
    ):
        rep.on("sum", lambda r: sum(r["xs"]))
        assert await req.send({"type": "sum", "xs": [1, 2, 3]}) == 6
        assert node_key("/coterie", rep.advertisement, rep.id) in keys(secured)


async def test_a_dropped_token_is_replaced_by_logging_in_again(secured: EtcdServer) -> None:
    disc = discovery(access(secured))
    async with Requester(name="relogin req", discovery=disc, timeout=5_000 * MS) as req:
        # Setting a user's password, even to the same one, makes etcd drop
        # every token it gave that user: the next call is refused as
        # "invalid auth token", and only a new login lets the process write.
        secured.call("/v3/auth/user/changepw", {"name": USER, "password": PASSWORD},
                     secured.root_token)  # fmt: skip
        async with Responder(name="relogin rep", discovery=disc) as rep:
            rep.on("sum", lambda r: sum(r["xs"]))
            assert await req.send({"type": "sum", "xs": [4, 5]}) == 9
            assert node_key("/coterie", rep.advertisement, rep.id) in keys(secured)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"password": "wrong"}, "refused the user name or password: check EtcdSettings user"),
        ({"user": None, "password": None}, "authentication enabled: set EtcdSettings user"),
        ({"cert": None, "key": None}, "asks for a client certificate"),
        ({"user": "intruder", "password": PASSWORD}, "COTERIE_DISCOVERY_ETCD_USER / _PASSWORD"),
    ],
    ids=["wrong-password", "no-user", "no-client-certificate", "unknown-user"],
)
async def test_a_refusal_says_what_to_change(
    secured: EtcdServer, overrides: dict[str, Any], says: str
) -> None:
    rep = Responder(name="refused", discovery=discovery(access(secured, **overrides)))
    with pytest.raises(PermissionError, match=says):
        await rep.start()
    await rep.close()
    assert keys(secured) == []


async def test_a_wrong_ca_says_so(secured: EtcdServer, tmp_path: Path) -> None:
    other = EtcdTLS.make(tmp_path)
    rep = Responder(name="wrong ca", discovery=discovery(access(secured, ca=other.ca)))
    with pytest.raises(PermissionError, match="not signed by the CA this side trusts"):
        await rep.start()
    await rep.close()


def test_access_settings_and_environment() -> None:
    env = {
        "COTERIE_DISCOVERY_ETCD": "https://etcd-0:2379",
        "COTERIE_DISCOVERY_ETCD_CA": " /etc/etcd/ca.crt ",
        "COTERIE_DISCOVERY_ETCD_CERT": "/etc/etcd/client.crt",
        "COTERIE_DISCOVERY_ETCD_KEY": "/etc/etcd/client.key",
        "COTERIE_DISCOVERY_ETCD_USER": "mesh",
        "COTERIE_DISCOVERY_ETCD_PASSWORD": " pw ",
    }
    etcd = DiscoveryOptions().resolve(env).etcd
    assert etcd == EtcdSettings(
        ("https://etcd-0:2379",), "/coterie", "/etc/etcd/ca.crt", "/etc/etcd/client.crt",
        "/etc/etcd/client.key", "mesh", " pw ",
    )  # fmt: skip
    assert "pw" not in repr(etcd)
    # A URL given in code still takes the environment's credentials.
    given = DiscoveryOptions(etcd="https://etcd-9:2379").resolve(env).etcd
    assert given is not None and given.user == "mesh" and given.ca == "/etc/etcd/ca.crt"
    url = "https://e:2379"
    with pytest.raises(ValueError, match="https:// client URLs"):
        DiscoveryOptions(etcd=EtcdSettings(("http://e:2379",), ca="/ca.pem")).resolve({})
    with pytest.raises(ValueError, match="user and password go together"):
        DiscoveryOptions(etcd=EtcdSettings((url,), user="mesh")).resolve({})
    with pytest.raises(ValueError, match="needs its certificate"):
        DiscoveryOptions(etcd=EtcdSettings((url,), key="/k.pem")).resolve({})


async def test_an_unreadable_certificate_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "client.pem")
    etcd = EtcdSettings(("https://127.0.0.1:1",), cert=missing)
    rep = Responder(name="no file", discovery=discovery(etcd))
    with pytest.raises(ValueError, match=r"client\.pem"):
        await rep.start()
    await rep.close()
