"""Sample data for `make run`: one account with a published certification, a staff user,
and a partner with a partner user."""
from models import Account, ApiKey, Certification, Partner, User

DEMO_ACCOUNT = "Demo Vendor"


def ensure_demo_account() -> Account:
    """The demo account, created with its sample data the first time."""
    account = Account.get_or_none(Account.name == DEMO_ACCOUNT)
    if account is not None:
        return account
    account = Account.create(name=DEMO_ACCOUNT)
    Certification.create(
        account=account, name="Cloud Fundamentals", status="published",
        description="Core concepts of the platform.", passing_score=80, max_attempts=3,
        validity_days=365,
    )
    User.create(account=account, email="staff@demo.example", email_key="staff@demo.example",
                first_name="Sam", last_name="Staff")
    partner = Partner.create(account=account, name="Acme Consulting",
                             email="partners@acme.example", website_url="https://acme.example")
    User.create(account=account, email="pat@acme.example", email_key="pat@acme.example",
                first_name="Pat", last_name="Partner", partner=partner)
    return account


def demo_key() -> str:
    """A fresh write key for the demo account (keys are shown once, so each start makes one)."""
    _, plain = ApiKey.issue(ensure_demo_account(), "write")
    return plain
