"""The `certapi` command: serve, migrate, and operator tasks on accounts and keys."""
import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from models.db import DEFAULT_DATABASE_URL, database_url, is_sqlite

# The levels uvicorn and gunicorn both accept.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# A command that finds the database not migrated exits with this, like a usage error:
# nothing was done, and the fix is another command.
NOT_MIGRATED = 2

if TYPE_CHECKING:
    from models import Account


class CommandError(Exception):
    """Ends the command with a one-line message on stderr and an exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def describe_database(url: str) -> str:
    """The database as an operator would look for it: a SQLite file's absolute path, or
    the URL with its password hidden."""
    if is_sqlite(url):
        path = _sqlite_path(url)
        return str(Path(path).resolve()) if path and path != ":memory:" else url
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _sqlite_path(url: str) -> str:
    """The file of a sqlite:/// URL, as playhouse.db_url reads it."""
    return urlsplit(url).path[1:]


def _database(args: argparse.Namespace, migrated: bool = True) -> None:
    """Bind the database; unless the command is the one that migrates, refuse a database
    that is missing or not migrated, without creating an empty SQLite file on the way."""
    from models.db import init_database

    if getattr(args, "database_url", None):
        os.environ["DATABASE_URL"] = args.database_url  # workers read the same setting
    url = database_url()
    advice = f"run certapi migrate (database: {describe_database(url)})"
    if migrated and is_sqlite(url):
        path = _sqlite_path(url)
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
            raise CommandError(f"no database yet: {advice}", NOT_MIGRATED)
    init_database()
    if migrated:
        from models.migrate import pending

        missing = pending()
        if missing:
            raise CommandError(f"database not migrated ({', '.join(missing)} pending): {advice}",
                               NOT_MIGRATED)


def cmd_migrate(args: argparse.Namespace) -> int:
    from models.migrate import migrate

    _database(args, migrated=False)
    applied = migrate()
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from certapi.server import cannot_listen, serve
    from models.db import close_all
    from models.migrate import migrate

    if args.workers < 1:
        raise CommandError("--workers must be at least 1", 2)
    problem = cannot_listen(args.host, args.port)
    if problem:
        raise CommandError(problem)
    _database(args, migrated=False)
    migrate()  # once, here, before any worker starts
    if args.demo:
        from certapi.demo import demo_key, ensure_demo_account

        key = demo_key()
        base = f"http://{args.host}:{args.port}/v1"
        print(f"\n  Demo API key (write): {key}\n  Demo account:         {ensure_demo_account().uuid}\n"
              f"  Swagger UI:           {base}/ui/\n"
              f"  Try: curl -H 'Authorization: Bearer {key}' {base}/certifications\n", flush=True)
    close_all()  # the workers open their own connections; none may cross a fork
    serve(args.host, args.port, workers=args.workers, log_level=args.log_level)
    return 0


def cmd_accounts_list(args: argparse.Namespace) -> int:
    from models import Account

    _database(args)
    for account in Account.select().order_by(Account.created_at, Account.uuid):
        print(f"{account.uuid}  {account.created_at:%Y-%m-%dT%H:%M:%SZ}  {account.name}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from certapi.webhooks.worker import run_worker

    _database(args)
    return run_worker()


def cmd_accounts_create(args: argparse.Namespace) -> int:
    from models import Account

    _database(args)
    print(Account.create(name=args.name).uuid)
    return 0


def _account(account_uuid: str) -> "Account | None":
    """The account, or None after telling the operator it does not exist."""
    from models import Account

    account = Account.get_or_none(Account.uuid == account_uuid.lower())
    if account is None:
        print(f"error: no account {account_uuid}", file=sys.stderr)
    return account


def cmd_keys_create(args: argparse.Namespace) -> int:
    from models import ApiKey

    _database(args)
    account = _account(args.account_uuid)
    if account is None:
        return 1
    _, plain = ApiKey.issue(account, args.permission, rate_limit=args.rate_limit)
    print(plain)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from models import ApiKey

    _database(args)
    account = _account(args.account_uuid)
    if account is None:
        return 1
    keys = ApiKey.select().where(ApiKey.account == account).order_by(ApiKey.created_at)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
        # A key without a limit of its own follows the server's CERTAPI_RATE_LIMIT.
        limit = ("default" if key.rate_limit is None
                 else f"{key.rate_limit}/min" if key.rate_limit else "unlimited")
        print(f"{key.uuid}  {key.hint}…  {key.permission:5}  {key.created_at:%Y-%m-%dT%H:%M:%SZ}  "
              f"{limit:9}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from models import ApiKey
    from models.base import utcnow

    _database(args)
    rows = (ApiKey.update(revoked_at=utcnow())
            .where((ApiKey.uuid == args.key_id.lower()) & ApiKey.revoked_at.is_null())
            .execute())
    if not rows:
        print(f"error: no active key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    from certapi.contract.command import run

    return run(args.base_url, args.api_key, read_key=args.read_key,
               second_account_key=args.second_account_key, junit=args.junit, select=args.k,
               json_path=args.json, strict=args.strict, api_root=args.api_root,
               webhook_receiver=args.webhook_receiver,
               limited_key=args.limited_key)


def _rate_limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number of requests per minute (0: unlimited)")
    return int(text)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return port


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The action of a command given without its subcommand: show what it offers."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certapi", description=__doc__,
        epilog="Every command but `contract` works on $DATABASE_URL (default "
               f"{DEFAULT_DATABASE_URL}, relative to the current directory); run "
               "`certapi migrate` once before the others. `certapi COMMAND -h` for details.")
    parser.set_defaults(func=_help_of(parser))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", metavar="URL",
                        help=f"database URL (default: $DATABASE_URL or {DEFAULT_DATABASE_URL})")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="migrate, then run the HTTP API",
                           description="Apply pending migrations, then serve the API under /v1.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (default %(default)s)")
    serve.add_argument("--demo", action="store_true",
                       help="create the demo account on first start and print a write key")
    serve.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                       help="server log level (default %(default)s)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (default 1: a single uvicorn process; more: "
                            "gunicorn supervising that many uvicorn workers)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", parents=[common], help="deliver webhooks and raise expiry events (no HTTP API)") \
        .set_defaults(func=cmd_worker)

    sub.add_parser("migrate", parents=[common], help="apply pending schema migrations; safe to repeat") \
        .set_defaults(func=cmd_migrate)

    accounts_parser = sub.add_parser("accounts", help="list and create accounts")
    accounts_parser.set_defaults(func=_help_of(accounts_parser))
    accounts = accounts_parser.add_subparsers(dest="action", title="actions", metavar="ACTION")
    alist = accounts.add_parser("list", parents=[common], help="list accounts: uuid, created, name")
    alist.set_defaults(func=cmd_accounts_list)
    create = accounts.add_parser("create", parents=[common], help="create an account, print its uuid")
    create.add_argument("name", help="the account's display name")
    create.set_defaults(func=cmd_accounts_create)

    keys_parser = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_parser.set_defaults(func=_help_of(keys_parser))
    keys = keys_parser.add_subparsers(dest="action", title="actions", metavar="ACTION")
    kcreate = keys.add_parser("create", parents=[common], help="create a key, print it once")
    kcreate.add_argument("account_uuid", help="the account the key acts for (certapi accounts list)")
    kcreate.add_argument("--permission", choices=["read", "write"], default="write",
                         help="read: GET only; write: everything (default %(default)s)")
    kcreate.add_argument("--rate-limit", type=_rate_limit, metavar="N",
                         help="this key's requests per minute (0: unlimited; default: "
                              "$CERTAPI_RATE_LIMIT, 500)")
    kcreate.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", parents=[common],
                            help="list an account's keys: id, hint, permission, created, rate limit, state")
    klist.add_argument("account_uuid", help="the account whose keys to list")
    klist.set_defaults(func=cmd_keys_list)
    krevoke = keys.add_parser("revoke", parents=[common], help="revoke a key by its id")
    krevoke.add_argument("key_id", help="the key's id, the first column of `certapi keys list`")
    krevoke.set_defaults(func=cmd_keys_revoke)

    contract = sub.add_parser(
        "contract", help="check a running implementation against the contract, over HTTP")
    contract.add_argument("--base-url", required=True,
                          help="the API root (http://host:8080/v1), or the server root: then "
                               "/v1 or / is used, whichever serves /health")
    contract.add_argument("--api-root", metavar="PATH",
                          help="the API root's path on the server ('/v1', or '/' for none); "
                               "overrides any path in --base-url")
    contract.add_argument("--api-key", required=True, help="a write key of the account to use")
    contract.add_argument("--read-key", help="a read-only key of the same account")
    contract.add_argument("--second-account-key", help="a write key of another account")
    contract.add_argument("--limited-key",
                          help="a key with a small rate limit (--rate-limit 5), used up by the 429 check")
    contract.add_argument("--junit", metavar="PATH", help="write a JUnit XML report here")
    contract.add_argument("-k", metavar="TEXT", help="run only scenarios whose name contains TEXT")
    contract.add_argument("--json", metavar="PATH",
                          help="write a JSON report here (one object per scenario)")
    contract.add_argument("--strict", action="store_true",
                          help="exit 1 on MISSING (a route the server lacks) too, not only on FAIL")
    contract.add_argument("--webhook-receiver", metavar="URL|auto",
                          help="run a receiver for the webhooks scenarios: on a free loopback "
                               "port (auto) or on the port of URL, the address the server posts to")
    contract.set_defaults(func=cmd_contract)
    return parser


def main(argv: list[str] | None = None) -> int:
    from peewee import DatabaseError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except (DatabaseError, OSError) as exc:  # unreachable server, unwritable directory, ...
        reason = " ".join(str(exc).split()) or type(exc).__name__  # drivers write several lines
        print(f"error: {reason} (database: {describe_database(database_url())})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
