"""Build hook: compile the request-path modules with mypyc (see ``coterie/_native.py``).

Design: hatchling runs this for every build, the editable install of
``make setup`` included. The modules named in ``pyproject.toml``
(``[tool.hatch.build.hooks.custom] modules``, paths under ``src/``) are
compiled by mypyc from the same source as the pure-Python package, in a
temporary directory; the extensions are copied into ``src/coterie/_compiled/``
under their full dotted names with a manifest of their sources'
fingerprints, never beside the ``.py`` files, and ``coterie._native`` picks
them at import. Without a C compiler (or mypyc) the build goes on as pure
Python with a warning, unless ``COTERIE_REQUIRE_EXTENSIONS=1`` (CI), which
makes it fail. ``COTERIE_NO_EXTENSIONS=1`` skips compiling.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: mypyc's shared runtime module for the group; ``coterie._native.RUNTIME``.
GROUP = "coterie_native"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _fingerprint(path: Path) -> str:
    data = path.read_bytes()
    return f"{len(data)} {zlib.crc32(data):08x}"


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the configured modules into ``src/coterie/_compiled``."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile before the files are collected."""
        src = Path(self.root, "src")
        target = src / "coterie" / "_compiled"
        if _flag("COTERIE_NO_EXTENSIONS"):
            self.app.display_info("coterie: COTERIE_NO_EXTENSIONS set: pure Python build")
            shutil.rmtree(target, ignore_errors=True)
            return
        modules = list(self.config.get("modules") or [])
        try:
            self._compile(src, modules, target)
        except Exception as exc:
            shutil.rmtree(target, ignore_errors=True)
            if _flag("COTERIE_REQUIRE_EXTENSIONS"):
                raise RuntimeError(
                    f"coterie: compiling {modules} with mypyc failed: {exc} "
                    "(COTERIE_REQUIRE_EXTENSIONS is set, so the build stops)"
                ) from exc
            self.app.display_warning(
                f"coterie: compiling with mypyc failed ({exc}); installing pure Python"
            )
            return
        self.app.display_info(f"coterie: compiled {len(modules)} modules with mypyc")
        if version != "editable":  # an editable install reads src/ itself
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["artifacts"].append("src/coterie/_compiled/*")

    def _compile(self, src: Path, modules: list[str], target: Path) -> None:
        if not modules:
            raise RuntimeError("no modules listed in [tool.hatch.build.hooks.custom] modules")
        missing = [m for m in modules if not (src / m).is_file()]
        if missing:
            raise RuntimeError(f"listed modules not found under src/: {missing}")
        from mypyc.build import mypycify
        from setuptools import Distribution

        with tempfile.TemporaryDirectory(prefix="coterie-mypyc-") as tmp:
            work = Path(tmp)
            shutil.copytree(src / "coterie", work / "coterie", ignore=_ignore)
            here = os.getcwd()
            os.chdir(work)  # mypyc writes its C next to the working directory
            try:
                extensions = mypycify(
                    [*modules, "--ignore-missing-imports"], opt_level="3", group_name=GROUP
                )
                dist = Distribution({"name": "coterie-native", "ext_modules": extensions})
                command = dist.get_command_obj("build_ext")
                command.build_lib = str(work / "lib")  # type: ignore[attr-defined]
                command.build_temp = str(work / "temp")  # type: ignore[attr-defined]
                dist.run_command("build_ext")
            finally:
                os.chdir(here)
            suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
            built = {p.name: p for p in (work / "lib").rglob(f"*{suffix}")}
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            lines = []
            for module_path in modules:
                name = module_path.removesuffix(".py").replace("/", ".")
                # By its full path: two modules may share a leaf name
                # (protocol/requester.py, components/requester.py).
                found = work / "lib" / (module_path.removesuffix(".py") + suffix)
                if not found.is_file():
                    raise RuntimeError(f"mypyc built no {found.name} for {name} at {found}")
                shutil.copy2(found, target / f"{name}{suffix}")
                lines.append(f"{name} {_fingerprint(src / module_path)}\n")
            runtime = f"{GROUP}__mypyc{suffix}"
            if runtime not in built:
                raise RuntimeError(f"mypyc built no {runtime}")
            shutil.copy2(built[runtime], target / runtime)
            (target / "manifest").write_text("".join(lines))
        print(f"coterie: compiled {', '.join(modules)} for {sys.version.split()[0]}")


def _ignore(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "_compiled") or n.endswith((".so", ".pyd"))]
