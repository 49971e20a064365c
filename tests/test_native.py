"""The compiled request path and its pure-Python fallback (``coterie._native``).

Each check runs in a fresh interpreter, since the choice is made once, when
coterie is first imported. The compiled checks need the extensions that
``make setup`` builds; they are skipped where none were built, unless
``COTERIE_REQUIRE_EXTENSIONS`` is set (CI), where a missing build fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coterie import _native

BUILT = Path(_native.MANIFEST).exists()
#: Built from the sources as they are now (else everything runs pure: make native).
CURRENT = BUILT and all(
    _native.fingerprint(_native._source(module)) == digest
    for module, digest in _native.read_manifest(_native.MANIFEST).items()
)
REQUIRED = os.environ.get("COTERIE_REQUIRE_EXTENSIONS", "") not in ("", "0")

PROBE = """
import json, coterie, coterie._native as n
import coterie.protocol.framing as f, coterie.protocol.routing as r
print(json.dumps({"framing": f.__file__, "routing": r.__file__, "describe": n.describe()}))
"""


def probe(**env: str) -> dict[str, str]:
    environ = {**os.environ, **env}
    for name in ("COTERIE_NO_EXTENSIONS", "COTERIE_REQUIRE_EXTENSIONS"):
        if name not in env:
            environ.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, str] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_no_extensions_runs_the_pure_python_source() -> None:
    seen = probe(COTERIE_NO_EXTENSIONS="1")
    assert seen["framing"].endswith(os.path.join("protocol", "framing.py"))
    assert seen["routing"].endswith(os.path.join("protocol", "routing.py"))
    assert seen["describe"] == "pure Python (COTERIE_NO_EXTENSIONS)"


@pytest.mark.skipif(
    not CURRENT and not REQUIRED, reason="no compiled modules built from these sources"
)
def test_the_compiled_modules_are_chosen_when_built() -> None:
    seen = probe()
    assert "_compiled" in seen["framing"] and seen["framing"].endswith(".so")
    assert "_compiled" in seen["routing"]
    assert seen["describe"].startswith("compiled with mypyc: ")
    assert "protocol.framing" in seen["describe"]


@pytest.mark.skipif(not BUILT, reason="no compiled modules built (no gcc?)")
def test_a_source_changed_since_the_build_makes_it_all_pure_python(tmp_path: Path) -> None:
    # A copy of the build beside a copy of the sources, so nothing real is touched.
    compiled = tmp_path / "coterie" / "_compiled"
    shutil.copytree(_native.DIRECTORY, compiled)
    manifest = _native.read_manifest(_native.MANIFEST)
    root = Path(_native.DIRECTORY).parent.parent
    for module in manifest:
        source = Path(root, *module.split(".")).with_suffix(".py")
        copy = Path(tmp_path, *module.split(".")).with_suffix(".py")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    edited = tmp_path / "coterie" / "protocol" / "framing.py"
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    script = f"""
import json, os, sys, coterie._native as n
os.environ.pop("COTERIE_NO_EXTENSIONS")  # imported with it set: nothing was installed
n.DIRECTORY = {str(compiled)!r}
n.MANIFEST = {str(compiled / "manifest")!r}
try:
    n.install()
except ImportError as exc:
    print(json.dumps({{"error": str(exc)}}))
    sys.exit(0)
print(json.dumps({{"compiled": sorted(n.COMPILED), "stale": n.stale(), "describe": n.describe()}}))
"""

    def run(**env: str) -> dict[str, object]:
        environ = {**os.environ, "COTERIE_NO_EXTENSIONS": "1"}  # the import installs nothing
        environ.pop("COTERIE_REQUIRE_EXTENSIONS", None)
        environ.update(env)
        out = subprocess.run(
            [sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
        return result

    lenient = run()
    assert lenient["compiled"] == []  # all or nothing: routing calls framing natively
    # Not silent: the build says why it is not running, and stale() fails make test and bench.
    assert "framing.py changed since it was compiled" in str(lenient["describe"])
    assert str(lenient["describe"]).startswith("pure Python, though a build exists")
    assert "make native" in str(lenient["stale"])
    strict = run(COTERIE_REQUIRE_EXTENSIONS="1")
    assert "framing.py changed since it was compiled" in str(strict["error"])


def _check_native() -> Callable[[], int]:
    """``main`` of scripts/check_native.py, which ``make test`` runs before its compiled run."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "check_native.py"
    spec = importlib.util.spec_from_file_location("check_native", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main: Callable[[], int] = module.main
    return main


STALE = "/src/coterie/protocol/framing.py changed since it was compiled"


def test_a_stale_build_fails_the_check_and_the_bench(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Imported by name: mypy checks bench/ in its own run, not through the tests.
    bench: Callable[[list[str]], int] = importlib.import_module("bench.__main__").main
    check = _check_native()
    monkeypatch.delenv("COTERIE_NO_EXTENSIONS", raising=False)
    # What install() leaves after finding the stale source: nothing compiled.
    monkeypatch.setattr(_native, "PROBLEM", STALE)
    monkeypatch.setattr(_native, "COMPILED", {})
    assert check() == 1
    out = capsys.readouterr()
    assert f"{STALE}: the compiled build is stale; rebuild it with `make native`" in out.err
    assert bench(["--smoke", "--no-docs"]) == 2
    assert "bench: not measuring: " + STALE in capsys.readouterr().err
    # Pure Python asked for on purpose is what runs: nothing to fail.
    monkeypatch.setenv("COTERIE_NO_EXTENSIONS", "1")
    assert check() == 0
    assert capsys.readouterr().out == "coterie build: pure Python (COTERIE_NO_EXTENSIONS)\n"


def test_no_build_at_all_passes_the_check_as_pure_python(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A machine without a C compiler: no manifest, nothing compiled, nothing stale.
    monkeypatch.delenv("COTERIE_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(_native, "PROBLEM", None)
    monkeypatch.setattr(_native, "COMPILED", {})
    assert _check_native()() == 0
    assert capsys.readouterr().out == "coterie build: pure Python (no compiled modules built)\n"


def test_the_pytest_header_says_which_build_runs(pytestconfig: pytest.Config) -> None:
    from tests.conftest import pytest_report_header

    assert pytest_report_header(pytestconfig)[0] == f"coterie build: {_native.describe()}"
