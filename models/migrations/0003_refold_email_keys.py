"""Email keys folded the way they are compared now: NFKC, case-folded, NFKC again.

0001's keys were only case-folded, so ``ａda@x.example`` (fullwidth) and ``ada@x.example``,
or ``café`` composed and decomposed, were different users. Existing users get the new
key. Where two users of one account now share a key, the older keeps it and each newer
one gets ``<key>#dup-<uuid>`` (unique, found by nobody's email filter) and a warning in
the migration's log, for an operator to merge or delete; nothing is lost.

The fold is copied here, not imported: a migration must keep doing what it did.
"""
import logging
import unicodedata

from peewee import CharField, DateTimeField, Model

log = logging.getLogger("certapi.migrate")
KEY_LENGTH = 254


def _fold(email: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold())


def up(migrator, db):
    class User(Model):
        uuid = CharField(primary_key=True, max_length=36)
        account = CharField(column_name="account_id")
        created_at = DateTimeField()
        email = CharField(max_length=254)
        email_key = CharField(max_length=254)

        class Meta:
            database = db
            table_name = "user"

    final: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()
    rows = User.select(User.uuid, User.account, User.email, User.email_key).order_by(
        User.account, User.created_at, User.uuid).tuples()
    for uuid, account, email, old_key in rows:
        key = _fold(email)[:KEY_LENGTH]
        if (account, key) in taken:
            duplicate = f"#dup-{uuid}"
            log.warning("user %s: email %r now equals an older user's in account %s; "
                        "its key is %r until merged", uuid, email, account, key + duplicate)
            key = key[:KEY_LENGTH - len(duplicate)] + duplicate
        taken.add((account, key))
        if key != old_key:
            final[uuid] = key
    # Two passes, so no row ever holds a key another still has (the index is unique).
    for uuid in final:
        User.update(email_key=f"#moving-{uuid}").where(User.uuid == uuid).execute()
    for uuid, key in final.items():
        User.update(email_key=key).where(User.uuid == uuid).execute()


def down(migrator, db):
    pass  # the old keys were a coarser fold; the new ones serve the old code as well
