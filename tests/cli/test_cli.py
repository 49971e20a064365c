"""The ``coterie`` command line: registration, parsing, clear errors.

Every error is one clear line and a non-zero exit, never a traceback: runtime
failures are exactly one line on stderr and exit 1 (127 for a command
``announce`` cannot start); usage mistakes are argparse's usage and one
``error:`` line, exit 2. The error tests run the real ``coterie`` command.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coterie.cli import COMMANDS, build_parser, main
from coterie.gateways import nginx as nginx_gateway
from tests.e2e.support import NGINX, free_port, needs_nginx


def test_every_listed_module_registers_its_subcommand() -> None:
    assert set(COMMANDS) == {
        *("run", "call", "publish", "listen", "services", "bench"),
        *("announce", "nginx", "monitor", "certs", "doctor"),
    }
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


def test_the_example_is_not_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    # `coterie bench` loads a service; the repository's own benchmarks are `make bench`.
    with pytest.raises(SystemExit) as exc:
        main(["demo"])
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


# -- every error is one clear line, never a traceback ----------------------------------

COTERIE = [sys.executable, "-m", "coterie"]


def _coterie(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NGINX", "COTERIE_NGINX")}
    return subprocess.run(
        [*COTERIE, *argv], capture_output=True, text=True, timeout=timeout, env=env
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("binary", "says"),
    [
        ("/nonexistent/nginx", "nginx binary /nonexistent/nginx does not exist"),
        ("/etc", "nginx binary /etc is a directory, not a program"),
        ("no-such-nginx", "nginx binary 'no-such-nginx' is not on PATH"),
    ],
)
def test_nginx_says_what_is_wrong_with_the_binary_it_was_given(binary: str, says: str) -> None:
    result = _coterie("nginx", "--service", "s", "--nginx", binary)
    assert result.returncode == 1
    assert _one_line(result).endswith(says)
    assert "is not installed" not in result.stderr


def test_nginx_says_a_file_is_not_executable(tmp_path: Path) -> None:
    binary = tmp_path / "nginx"
    binary.write_text("")
    binary.chmod(0o644)
    result = _coterie("nginx", "--service", "s", "--nginx", str(binary))
    assert result.returncode == 1
    assert _one_line(result).endswith(f"nginx binary {binary} is not executable")


def test_nginx_names_a_binary_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NGINX", raising=False)
    monkeypatch.setenv("COTERIE_NGINX", "/nonexistent/nginx")
    with pytest.raises(
        nginx_gateway.NginxError, match=r"^\$COTERIE_NGINX: nginx binary /nonexistent"
    ):
        nginx_gateway.NginxServer("/tmp/unused")


def test_nginx_not_found_anywhere_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Nothing on PATH, and no file in the usual sbin places.
    monkeypatch.delenv("NGINX", raising=False)
    monkeypatch.delenv("COTERIE_NGINX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os.path, "isfile", lambda path: False)
    with pytest.raises(nginx_gateway.NginxError, match=r"^nginx is not installed .*apt-get"):
        nginx_gateway.NginxServer(tmp_path)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["announce", "--name", "x", "--port", "1", "--discovery-port", "99999", "--", "true"],
            "coterie announce: error: discovery port must be 1-65535, got 99999",
        ),
        (
            ["nginx", "--service", "s", "--hello-interval", "-5"],
            "coterie nginx: error: hello interval must be positive ms, got -5",
        ),
        (
            ["announce", "--name", "x", "--port", "1", "--check-interval", "0", "--", "true"],
            "coterie announce: error: check interval must be positive, got 0.0",
        ),
    ],
)
def test_usage_mistakes_end_with_one_error_line(argv: list[str], says: str) -> None:
    result = _coterie(*argv)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == says
    assert "Traceback" not in result.stderr


def test_announce_of_a_missing_program_is_one_line_and_127() -> None:
    result = _coterie("announce", "--name", "x", "--port", "1", "--", "/no/such/prog")
    assert result.returncode == 127
    assert "cannot run /no/such/prog" in _one_line(result)


@needs_nginx
@pytest.mark.nginx
def test_nginx_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _coterie(
            "nginx", "--service", "s", "--listen", f"127.0.0.1:{port}", "--prefix", str(tmp_path)
        )
    assert result.returncode == 1
    assert _one_line(result).endswith(
        f"nginx cannot listen on 127.0.0.1:{port}: Address already in use"
    )


@needs_nginx
@pytest.mark.nginx
def test_nginx_with_an_unusable_prefix_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _coterie(
        "nginx", "--service", "s", "--listen", str(free_port()), "--prefix", str(blocker / "sub")
    )
    assert result.returncode == 1
    assert "Not a directory" in _one_line(result)


@needs_nginx
@pytest.mark.nginx
def test_when_nginx_dies_coterie_nginx_says_so_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*COTERIE, "nginx", "--service", "s", "--listen", str(port), "--prefix", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        pid_file = tmp_path / "nginx.pid"
        deadline = time.monotonic() + 15
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline, "nginx did not start"
            assert proc.poll() is None, proc.communicate(timeout=5)[1]
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(int(pid_file.read_text()), signal.SIGTERM)  # nginx's fast shutdown
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].split(": ", 1)[1].startswith("nginx exited with code")
    assert "Traceback" not in err


def test_an_unexpected_failure_is_one_line_and_verbose_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import coterie.cli.announce as announce_cli

    def broken(args: object) -> int:
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(announce_cli, "run", broken)
    argv = ["announce", "--name", "x", "--port", "1", "--", "true"]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "coterie announce: error: RuntimeError: something unexpected\n"
    )
    with pytest.raises(RuntimeError, match="something"):
        main(["-v", *argv])


def test_nginx_is_found_for_these_tests_or_they_skip() -> None:
    # The nginx tests above need it; say so when it is missing rather than pass silently.
    if NGINX is None:
        pytest.skip("nginx is not installed")
    assert os.access(NGINX, os.X_OK)
