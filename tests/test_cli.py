"""The `certapi` command: migrations, accounts and keys. In-process through
certapi.cli.main (DATABASE_URL set per test), and once as a real subprocess."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from certapi.cli import main
from models import ApiKey, database
from models.account import hash_key
from models.migrations import __path__ as migrations_path
from tests.conftest import expect_error

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MIGRATIONS = sorted(p.stem for p in Path(migrations_path[0]).glob("[0-9]*.py"))


@pytest.fixture
def cli(monkeypatch, capsys, keep_database_binding):
    """Run `certapi ARGV...` in-process; returns (exit code, stdout, stderr). The command
    binds the global database handle to $DATABASE_URL; the session's comes back after."""

    def run(*argv, url: str):
        monkeypatch.setenv("DATABASE_URL", url)
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def scratch(tmp_path) -> str:
    """A fresh SQLite file nobody else uses."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def shared(database_url) -> str:
    """The database the session's app serves, so keys made here authenticate there."""
    return database_url


def test_migrate_applies_everything_then_is_up_to_date(cli, scratch):
    assert MIGRATIONS, "no migrations found"
    code, out, err = cli("migrate", url=scratch)
    assert (code, err) == (0, "")
    assert out == "applied: " + ", ".join(MIGRATIONS) + "\n"
    code, out, err = cli("migrate", url=scratch)
    assert (code, out, err) == (0, "database is up to date\n", "")
    tables = set(database.get_tables())
    assert {"account", "api_key", "enrollment"} <= tables, tables


def test_database_url_option_wins_over_the_environment(cli, scratch, tmp_path):
    other = tmp_path / "other.db"
    code, out, _ = cli("migrate", "--database-url", f"sqlite:///{other}", url=scratch)
    assert code == 0 and out.startswith("applied: ")
    assert other.exists() and not (tmp_path / "cli.db").exists()


def test_accounts_create_prints_only_a_uuid(cli, scratch):
    cli("migrate", url=scratch)
    code, out, err = cli("accounts", "create", "Acme Corp", url=scratch)
    assert (code, err) == (0, "")
    assert out.endswith("\n") and out.count("\n") == 1 and UUID.match(out.strip()), out
    second = cli("accounts", "create", "Acme Corp", url=scratch)[1]
    assert second != out  # a new account every time


@pytest.mark.parametrize("permission", ["read", "write"])
def test_keys_create_prints_only_the_key_which_authenticates(cli, shared, client, permission):
    account = cli("accounts", "create", "CLI", url=shared)[1].strip()
    code, out, err = cli("keys", "create", account, "--permission", permission, url=shared)
    assert (code, err) == (0, "")
    key = out.strip()
    assert out == key + "\n" and " " not in key and len(key) >= 32
    assert ApiKey.get(ApiKey.key_hash == hash_key(key)).permission == permission
    for scheme in ("Bearer", "Api-Key"):
        headers = {"Authorization": f"{scheme} {key}"}
        assert client.get("/v1/certifications", headers=headers).status_code == 200
    write = client.post("/v1/partners", json={"name": "From the CLI"}, headers={"Authorization": f"Bearer {key}"})
    assert write.status_code == (201 if permission == "write" else 403), write.text


def test_keys_create_defaults_to_write(cli, shared):
    account = cli("accounts", "create", "Default", url=shared)[1].strip()
    key = cli("keys", "create", account, url=shared)[1].strip()
    assert ApiKey.get(ApiKey.key_hash == hash_key(key)).permission == "write"


def test_keys_list_shows_hint_permission_state_never_the_key(cli, shared, client):
    account = cli("accounts", "create", "Lister", url=shared)[1].strip()
    write_key = cli("keys", "create", account, url=shared)[1].strip()
    read_key = cli("keys", "create", account, "--permission", "read", url=shared)[1].strip()
    code, out, err = cli("keys", "list", account, url=shared)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    for line, key, permission in zip(lines, (write_key, read_key), ("write", "read")):
        row = ApiKey.get(ApiKey.key_hash == hash_key(key))
        assert line.split()[0] == row.uuid
        assert row.hint in line and permission in line.split() and line.endswith("active")
        assert key not in out and key[len(row.hint):] not in out

    key_id = lines[1].split()[0]
    code, out, err = cli("keys", "revoke", key_id, url=shared)
    assert (code, err) == (0, "") and key_id in out
    listed = cli("keys", "list", account, url=shared)[1].splitlines()
    assert "active" in listed[0] and re.search(r"revoked \d{4}-\d\d-\d\dT[\d:]+Z$", listed[1])
    # The revoked key stops at once (the test app caches nothing); the other keeps working.
    response = client.get("/v1/partners", headers={"Authorization": f"Bearer {read_key}"})
    expect_error(response, 401, "unauthorized")
    assert client.get("/v1/partners", headers={"Authorization": f"Bearer {write_key}"}).status_code == 200


def test_unknown_account_or_key_is_an_error(cli, scratch):
    cli("migrate", url=scratch)
    absent = "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"
    for argv in (("keys", "create", absent), ("keys", "create", "not-a-uuid"),
                 ("keys", "list", absent), ("keys", "revoke", absent)):
        code, out, err = cli(*argv, url=scratch)
        assert code != 0 and out == "" and err.startswith("error: "), (argv, code, out, err)


def test_revoking_twice_is_an_error(cli, scratch):
    cli("migrate", url=scratch)
    account = cli("accounts", "create", "Twice", url=scratch)[1].strip()
    cli("keys", "create", account, url=scratch)
    key_id = cli("keys", "list", account, url=scratch)[1].split()[0]
    assert cli("keys", "revoke", key_id, url=scratch)[0] == 0
    code, out, err = cli("keys", "revoke", key_id, url=scratch)
    assert code != 0 and out == "" and "error" in err


def test_bad_arguments_exit_nonzero(cli, scratch):
    code, out, err = cli("keys", "create", "x", "--permission", "admin", url=scratch)
    assert code == 2 and "invalid choice" in err
    code, out, err = cli("serve", "--log-level", "bogus", url=scratch)
    assert code == 2 and out == "" and "argument --log-level: invalid choice: 'bogus'" in err
    assert err.startswith("usage: certapi serve"), err
    for port in ("0", "65536", "http"):
        code, out, err = cli("serve", "--port", port, url=scratch)
        assert code == 2 and "argument --port: not a TCP port" in err, (port, err)
    code, out, err = cli("serve", "--workers", "0", url=scratch)
    assert (code, out, err) == (2, "", "error: --workers must be at least 1\n")
    assert not Path(scratch.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize("argv, shows", [
    ((), ("serve", "migrate", "accounts", "keys", "contract", "run `certapi migrate`")),
    (("accounts",), ("list", "create")),
    (("keys",), ("create", "list", "revoke")),
])
def test_a_command_without_its_subcommand_prints_its_help(cli, scratch, argv, shows):
    code, out, err = cli(*argv, url=scratch)
    assert (code, err) == (0, "")
    text = " ".join(out.split())  # argparse wraps to the terminal's width
    assert out.startswith("usage: certapi") and all(word in text for word in shows), out


def _actions(parser, path=("certapi",)):
    """(command path, option) for every argument of every command, subcommands included."""
    for action in parser._actions:
        if action.choices and hasattr(action, "_name_parser_map"):  # the subcommands
            for name, child in action._name_parser_map.items():
                yield from _actions(child, path + (name,))
        elif action.dest != "help":
            yield " ".join(path), action


def test_every_command_and_option_explains_itself():
    from certapi.cli import build_parser

    parser = build_parser()
    actions = list(_actions(parser))
    assert len({path for path, _ in actions}) >= 8, actions  # serve … keys revoke, contract
    silent = [(path, action.option_strings or action.dest) for path, action in actions
              if not (action.help or "").strip()]
    assert not silent, f"options without help text: {silent}"
    for subparsers in (a for a in parser._actions if hasattr(a, "_name_parser_map")):
        assert all(choice.help for choice in subparsers._choices_actions)


def test_accounts_list_shows_uuid_creation_and_name(cli, scratch):
    cli("migrate", url=scratch)
    assert cli("accounts", "list", url=scratch) == (0, "", "")
    first = cli("accounts", "create", "Acme Corp", url=scratch)[1].strip()
    second = cli("accounts", "create", "Demo  Vendor", url=scratch)[1].strip()
    code, out, err = cli("accounts", "list", url=scratch)
    assert (code, err) == (0, "")
    rows = [line.split("  ", 2) for line in out.splitlines()]
    assert [(row[0], row[2]) for row in rows] == [(first, "Acme Corp"), (second, "Demo  Vendor")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[1]) for row in rows), rows


@pytest.mark.parametrize("argv", [
    ("accounts", "list"), ("accounts", "create", "X"),
    ("keys", "create", "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"),
    ("keys", "list", "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"),
    ("keys", "revoke", "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"),
])
def test_without_a_database_a_command_says_to_migrate_and_creates_nothing(cli, tmp_path, argv):
    path = tmp_path / "absent.db"
    code, out, err = cli(*argv, url=f"sqlite:///{path}")
    assert (code, out) == (2, "")
    assert err == f"error: no database yet: run certapi migrate (database: {path})\n"
    assert list(tmp_path.iterdir()) == []


def test_an_unmigrated_database_names_the_pending_migrations(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    from models.db import init_database

    init_database(url).execute_sql("CREATE TABLE unrelated (x INTEGER)")  # a file, no schema
    code, out, err = cli("accounts", "create", "X", url=url)
    assert (code, out) == (2, "")
    assert err == (f"error: database not migrated ({', '.join(MIGRATIONS)} pending): "
                   f"run certapi migrate (database: {tmp_path / 'empty.db'})\n")
    assert cli("migrate", url=url)[0] == 0
    assert cli("accounts", "create", "X", url=url)[0] == 0


def test_an_unreachable_database_is_one_line_with_the_password_hidden(cli):
    code, out, err = cli("accounts", "list", url="postgresql://certapi:s3cret@127.0.0.1:1/certapi")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "s3cret" not in err and "(database: postgresql://certapi:***@127.0.0.1:1/certapi)" in err


def _listening_socket():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_serve_on_a_busy_port_prints_one_line_and_touches_nothing(cli, tmp_path):
    path = tmp_path / "serve.db"
    with _listening_socket() as busy:
        port = busy.getsockname()[1]
        code, out, err = cli("serve", "--demo", "--port", str(port), url=f"sqlite:///{path}")
    assert (code, out) == (1, "")  # no demo key printed
    assert err == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
                   "(another server is listening there; choose another port)\n")
    assert list(tmp_path.iterdir()) == []  # not even migrated


def test_serve_on_an_unknown_host_prints_one_line(cli, tmp_path):
    code, out, err = cli("serve", "--host", "no-such-host.invalid", url=f"sqlite:///{tmp_path / 's.db'}")
    assert (code, out) == (1, "")
    assert err.startswith("error: cannot listen on no-such-host.invalid:8080: unknown host")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_installed_command_as_a_subprocess(tmp_path):
    command = Path(sys.executable).with_name("certapi")
    assert command.exists(), f"{command} is not installed (pip install -e .)"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'sub.db'}"}

    def certapi(*argv):
        done = subprocess.run([str(command), *argv], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert certapi("migrate").startswith("applied: ")
    assert certapi("migrate") == "database is up to date\n"
    account = certapi("accounts", "create", "Subprocess").strip()
    assert UUID.match(account)
    key = certapi("keys", "create", account, "--permission", "read").strip()
    listing = certapi("keys", "list", account)
    assert "read" in listing and key[:10] in listing and key not in listing
    assert (tmp_path / "sub.db").exists() and not (tmp_path / "certapi.db").exists()
    failed = subprocess.run([str(command), "keys", "list", "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and failed.stderr.startswith("error: ")


def test_keys_create_with_a_rate_limit_which_list_shows_and_the_api_applies(cli, shared, client):
    account = cli("accounts", "create", "Limited", url=shared)[1].strip()
    limited = cli("keys", "create", account, "--rate-limit", "2", url=shared)[1].strip()
    unlimited = cli("keys", "create", account, "--rate-limit", "0", url=shared)[1].strip()
    default = cli("keys", "create", account, url=shared)[1].strip()
    code, out, err = cli("keys", "list", account, url=shared)
    assert (code, err) == (0, "")
    shown = [line.split()[4] for line in out.splitlines()]
    assert shown == ["2/min", "unlimited", "default"]
    for key, expected in ((limited, "2"), (default, "500")):
        response = client.get("/v1/partners", headers={"Authorization": f"Bearer {key}"})
        assert response.headers["x-ratelimit-limit"] == expected
    response = client.get("/v1/partners", headers={"Authorization": f"Bearer {unlimited}"})
    assert response.status_code == 200 and "x-ratelimit-limit" not in response.headers
    for bad in ("-1", "many", "1.5"):
        code, out, err = cli("keys", "create", account, "--rate-limit", bad, url=shared)
        assert code == 2 and "--rate-limit" in err
