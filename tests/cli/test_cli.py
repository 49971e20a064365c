"""The ``coterie`` command line: registration, parsing, clear errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from coterie.cli import COMMANDS, build_parser, main


def test_every_listed_module_registers_its_subcommand() -> None:
    assert set(COMMANDS) == {"announce", "nginx", "monitor", "certs", "doctor"}
    # The commands the help lists, each with its one-line summary.
    listed = build_parser().format_help().split("COMMAND\n", 1)[1]
    assert set(re.findall(r"^    (\w+) ", listed, flags=re.M)) == set(COMMANDS)


def test_the_readme_command_table_lists_every_subcommand() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## The command line", 1)[1].split("\n\n", 2)[1]
    listed = {m.group(1) for m in re.finditer(r"^\| `coterie (\w+)", table, flags=re.M)}
    assert listed == set(COMMANDS)


def test_no_subcommand_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "announce" in out and "nginx" in out and "monitor" in out


@pytest.mark.parametrize("gone", ["demo", "bench"])
def test_the_example_and_the_bench_are_not_subcommands(
    gone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([gone])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_unknown_option_of_a_subcommand_shows_that_subcommand_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["monitor", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: coterie monitor ")
    assert "coterie monitor: error: unrecognized arguments: --bogus" in err


def test_an_unknown_top_level_option_shows_the_top_level_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--bogus", "monitor", "--once"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: coterie [-h]")
    assert "coterie: error: unrecognized arguments: --bogus" in err


def test_arguments_after_double_dash_go_to_the_announced_command() -> None:
    argv = ["-q", "announce", "--name", "x", "--port", "1", "--check-interval", "0.05", "--"]
    code = "import sys; raise SystemExit(0 if sys.argv[1:] == ['--bogus'] else 5)"
    assert main([*argv, sys.executable, "-c", code, "--bogus"]) == 0


def test_announce_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["announce", "--name", "x", "--port", "8000"])
    assert exc.value.code == 2
    assert "give the command to run after --" in capsys.readouterr().err


def test_announce_with_a_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["announce", "--name", "x", "--port", "0", "--", "true"])
    assert "port must be 1-65535" in capsys.readouterr().err


def test_announce_returns_the_command_exit_code() -> None:
    argv = ["-q", "announce", "--name", "x", "--port", "1", "--check-interval", "0.05"]
    assert main([*argv, "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3


def test_announce_of_a_missing_program_is_127() -> None:
    assert main(["-q", "announce", "--name", "x", "--port", "1", "--", "/no/such/prog"]) == 127


def test_nginx_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["nginx", "--service", "validation-service", "--listen", "9", "--print-config"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "upstream validation-service {" in out
    assert "server 127.0.0.1:1 down;" in out
    assert "listen 127.0.0.1:9;" in out


def test_nginx_bad_listen_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nginx", "--service", "s", "--listen", "nowhere:"])
    assert "HOST:PORT" in capsys.readouterr().err


def test_nginx_with_a_missing_binary_names_it(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["nginx", "--service", "s", "--nginx", "/no/such/nginx"]) == 1
    assert "nginx binary /no/such/nginx does not exist" in caplog.text


def test_python_dash_m_coterie() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coterie", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith("coterie ")
