"""models.prepared: a statement is compiled once per variant and answers each run with
that run's values."""
from peewee import SQL, fn

from models import Account
from models.prepared import Prepared, slot


def test_compiled_once_per_variant_and_run_with_fresh_values(app, tenant):
    built = []

    def build(by_name: bool):
        built.append(by_name)
        query = Account.select(fn.COUNT(SQL("*"))).where(Account.uuid == slot("uuid"))
        return query.where(Account.name == slot("name")) if by_name else query

    count = Prepared(build)
    account = Account.get_by_id(tenant.uuid)

    def run(by_name: bool, **values) -> int:
        return count.execute(by_name, **values).fetchone()[0]

    assert run(False, uuid=account.uuid) == 1
    assert run(False, uuid="nobody") == 0
    assert run(True, uuid=account.uuid, name=account.name) == 1
    assert run(True, uuid=account.uuid, name=account.name + " not") == 0
    assert run(False, uuid=account.uuid) == 1
    assert built == [False, True]
