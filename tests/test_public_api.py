"""The public API is what ``coterie.__all__`` lists: pinned here on purpose.

Adding or removing a public name is a decision; update this list with it.
"""

from __future__ import annotations

import ast
import importlib
import pickle
import pkgutil
from pathlib import Path

import coterie

PUBLIC = [
    "DEFAULT_REQUEST_TIMEOUT",
    "Contract",
    "CoterieError",
    "DiscoveryOptions",
    "DiscoveryTransport",
    "EtcdSettings",
    "FrameTooLargeError",
    "LinkLostError",
    "Monitor",
    "Node",
    "NotRunningError",
    "Observer",
    "PendingBalancedRequester",
    "Publisher",
    "QueueFullError",
    "RedisSettings",
    "RemoteError",
    "RequestTimeoutError",
    "Requester",
    "Responder",
    "Retryable",
    "Settings",
    "Subscriber",
    "TLSFiles",
    "TimeBalancedRequester",
    "__version__",
    "serve",
]


def test_all_is_pinned() -> None:
    assert coterie.__all__ == PUBLIC


def test_the_sync_front_end_is_pinned() -> None:
    import coterie.sync

    assert coterie.sync.__all__ == ["Publisher", "Requester", "Subscriber"]
    for name in coterie.sync.__all__:
        assert getattr(coterie.sync, name).__module__ == "coterie.sync._components"


def test_public_classes_print_as_coterie_names_and_pickle_by_them() -> None:
    classes = [n for n in coterie.__all__ if isinstance(getattr(coterie, n), type)]
    assert len(classes) >= 20
    for name in classes:
        cls = getattr(coterie, name)
        assert repr(cls) == f"<class 'coterie.{name}'>"
        assert pickle.loads(pickle.dumps(cls)) is cls
    error = pickle.loads(pickle.dumps(coterie.RemoteError({"name": "KeyError", "message": "boom"})))
    assert type(error) is coterie.RemoteError and str(error) == "KeyError: boom"


def test_every_public_name_exists() -> None:
    missing = [name for name in coterie.__all__ if not hasattr(coterie, name)]
    assert missing == []


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from coterie import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)


#: The errors a caller can meet: what ``send``, ``publish`` and ``start`` raise.
CALLER_ERRORS = {
    "CoterieError",
    "FrameTooLargeError",
    "LinkLostError",
    "NotRunningError",
    "QueueFullError",
    "RemoteError",
    "RequestTimeoutError",
}
#: Errors the adapters catch and log; never raised to a caller, so not exported
#: by ``coterie`` (documented as such in ``coterie.errors``).
ADAPTER_ERRORS = {"AuthError", "DecodeError", "ProtocolError"}
#: Errors a handler raises (exported, but never raised to a caller).
HANDLER_ERRORS = {"Retryable"}


def test_errors_share_a_base_and_refine_builtins() -> None:
    errors = {name for name in coterie.__all__ if name.endswith("Error")}
    assert errors == CALLER_ERRORS
    for name in errors:
        assert issubclass(getattr(coterie, name), coterie.CoterieError)
    assert issubclass(coterie.RequestTimeoutError, TimeoutError)
    assert issubclass(coterie.LinkLostError, ConnectionError)
    assert issubclass(coterie.FrameTooLargeError, ValueError)


def test_errors_no_caller_meets_are_not_exported_but_documented() -> None:
    import coterie.errors as errors

    # The hierarchy drawn in the docstring has a branch for them, to its first blank line.
    adapter_section = (errors.__doc__ or "").split("never raised to a caller")[1].split("\n\n")[0]
    for name in ADAPTER_ERRORS:
        assert name not in coterie.__all__
        assert not hasattr(coterie, name)
        assert issubclass(getattr(errors, name), coterie.CoterieError)
        assert f"── {name} (" in adapter_section
    assert issubclass(errors.DecodeError, ValueError)
    assert issubclass(errors.ProtocolError, ValueError)
    assert issubclass(errors.AuthError, ConnectionError)


def test_retryable_is_raised_by_handlers_and_answers_with_code_retryable() -> None:
    from coterie.protocol.messages import error_value

    assert issubclass(coterie.Retryable, coterie.CoterieError)
    assert error_value(coterie.Retryable("pool full")) == {
        "message": "pool full",
        "name": "Retryable",
        "code": "retryable",
    }


def test_gateway_errors_live_with_their_gateway() -> None:
    import coterie.errors as errors
    from coterie.gateways.nginx import NginxError

    assert NginxError.__module__ == "coterie.gateways.nginx"
    assert issubclass(NginxError, coterie.CoterieError)
    assert issubclass(NginxError, RuntimeError)
    assert not hasattr(errors, "NginxError")
    assert "NginxError" not in coterie.__all__


def test_version_is_a_string() -> None:
    assert isinstance(coterie.__version__, str) and coterie.__version__


#: Modules a user may import besides ``coterie`` itself; everything else is
#: internal and says so in its package's docstring.
PUBLIC_MODULES = {
    "coterie",
    "coterie.errors",
    "coterie.settings",
    "coterie.tls",
    "coterie.observe",
    "coterie.metrics",
    "coterie.tracing",
    "coterie.typed",
    "coterie.gateways.sockend",
    "coterie.gateways.nginx",
    "coterie.gateways.announce",
    "coterie.cli",
    "coterie.testing",
    "coterie.web",
    "coterie.testing.plugin",
    "coterie.sync",
    "coterie.serving",
}


def _modules() -> list[str]:
    return ["coterie"] + [m.name for m in pkgutil.walk_packages(coterie.__path__, "coterie.")]


def test_every_module_is_public_private_or_documented_internal() -> None:
    undocumented = []
    for name in _modules():
        if name in PUBLIC_MODULES or any(part.startswith("_") for part in name.split(".")):
            continue
        package = name if hasattr(importlib.import_module(name), "__path__") else None
        owner = importlib.import_module(package or name.rsplit(".", 1)[0])
        if "Internal" not in (owner.__doc__ or "") and name not in PUBLIC_MODULES:
            undocumented.append(name)
    assert undocumented == []


def test_every_public_error_derives_from_coterie_error() -> None:
    import coterie.errors as errors

    defined = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ in (errors.__name__, "coterie")  # public ones print as coterie.X
    ]
    assert all(issubclass(e, coterie.CoterieError) for e in defined)
    assert sorted(e.__name__ for e in defined) == sorted(errors.__all__)
    assert set(errors.__all__) == CALLER_ERRORS | ADAPTER_ERRORS | HANDLER_ERRORS


#: What the sans-I/O package must never import.
IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "time",
    "random",
    "os",
    "selectors",
    "threading",
    "secrets",
    "uuid",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_protocol_package_imports_no_io_module() -> None:
    """Walk coterie.protocol's imports, transitively through coterie's own modules."""
    root = Path(coterie.__file__).parent
    seen: set[str] = set()
    todo = [f"coterie.protocol.{p.stem}" for p in (root / "protocol").glob("*.py")]
    offenders: dict[str, set[str]] = {}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        rel = Path(*module.split(".")[1:])
        path = root / rel.with_suffix(".py")
        if not path.exists():
            path = root / rel / "__init__.py"
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in IO_MODULES:
                offenders.setdefault(module, set()).add(imported)
            elif top == "coterie" and imported != "coterie":
                todo.append(imported)
    assert offenders == {}
    assert "coterie.protocol.routing" in seen and "coterie.errors" in seen


def test_the_import_walk_would_catch_an_io_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom time import monotonic\n")
    assert {"asyncio", "time"} <= _imports(bad)
