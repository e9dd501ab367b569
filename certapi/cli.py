"""The `certapi` command: serve, migrate, and operator tasks on accounts and keys."""
import argparse
import os
import sys

from models.db import DEFAULT_DATABASE_URL


def _database(args) -> None:
    from models.db import init_database

    if getattr(args, "database_url", None):
        os.environ["DATABASE_URL"] = args.database_url  # workers read the same setting
    init_database()


def cmd_migrate(args) -> int:
    from models.migrate import migrate

    _database(args)
    applied = migrate()
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_serve(args) -> int:
    from certapi.server import serve
    from models.db import close_all
    from models.migrate import migrate

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    _database(args)
    migrate()  # once, here, before any worker starts
    if args.demo:
        from certapi.demo import demo_key

        key = demo_key()
        base = f"http://{args.host}:{args.port}/v1"
        print(f"\n  Demo API key (write): {key}\n  Swagger UI:           {base}/ui/\n"
              f"  Try: curl -H 'Authorization: Bearer {key}' {base}/certifications\n", flush=True)
    close_all()  # the workers open their own connections; none may cross a fork
    serve(args.host, args.port, workers=args.workers, log_level=args.log_level)
    return 0


def cmd_accounts_create(args) -> int:
    from models import Account

    _database(args)
    print(Account.create(name=args.name).uuid)
    return 0


def _account(account_uuid: str):
    """The account, or None after telling the operator it does not exist."""
    from models import Account

    account = Account.get_or_none(Account.uuid == account_uuid.lower())
    if account is None:
        print(f"error: no account {account_uuid}", file=sys.stderr)
    return account


def cmd_keys_create(args) -> int:
    from models import ApiKey

    _database(args)
    account = _account(args.account_uuid)
    if account is None:
        return 1
    _, plain = ApiKey.issue(account, args.permission, rate_limit=args.rate_limit)
    print(plain)
    return 0


def cmd_keys_list(args) -> int:
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


def cmd_keys_revoke(args) -> int:
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


def cmd_contract(args) -> int:
    from certapi.contract.command import run

    return run(args.base_url, args.api_key, read_key=args.read_key,
               second_account_key=args.second_account_key, junit=args.junit, select=args.k,
               limited_key=args.limited_key)


def _rate_limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number of requests per minute (0: unlimited)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certapi", description=__doc__)
    db_help = f"database URL (default: $DATABASE_URL or {DEFAULT_DATABASE_URL})"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help=db_help)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--demo", action="store_true",
                       help="create the demo account on first start and print a write key")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (default 1: a single uvicorn process; more: "
                            "gunicorn supervising that many uvicorn workers)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", parents=[common], help="apply pending schema migrations") \
        .set_defaults(func=cmd_migrate)

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="action", required=True)
    create = accounts.add_parser("create", parents=[common], help="create an account, print its uuid")
    create.add_argument("name")
    create.set_defaults(func=cmd_accounts_create)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    kcreate = keys.add_parser("create", parents=[common], help="create a key, print it once")
    kcreate.add_argument("account_uuid")
    kcreate.add_argument("--permission", choices=["read", "write"], default="write")
    kcreate.add_argument("--rate-limit", type=_rate_limit, metavar="N",
                         help="this key's requests per minute (0: unlimited; default: "
                              "$CERTAPI_RATE_LIMIT, 500)")
    kcreate.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", parents=[common], help="list an account's keys")
    klist.add_argument("account_uuid")
    klist.set_defaults(func=cmd_keys_list)
    krevoke = keys.add_parser("revoke", parents=[common], help="revoke a key by its id")
    krevoke.add_argument("key_id")
    krevoke.set_defaults(func=cmd_keys_revoke)

    contract = sub.add_parser(
        "contract", help="check a running implementation against the contract, over HTTP")
    contract.add_argument("--base-url", required=True,
                          help="server root or API root, e.g. http://127.0.0.1:8080")
    contract.add_argument("--api-key", required=True, help="a write key of the account to use")
    contract.add_argument("--read-key", help="a read-only key of the same account")
    contract.add_argument("--second-account-key", help="a write key of another account")
    contract.add_argument("--limited-key",
                          help="a key with a small rate limit (--rate-limit 5), used up by the 429 check")
    contract.add_argument("--junit", metavar="PATH", help="write a JUnit XML report here")
    contract.add_argument("-k", metavar="TEXT", help="run only scenarios whose name contains TEXT")
    contract.set_defaults(func=cmd_contract)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
