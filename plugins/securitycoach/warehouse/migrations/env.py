"""Alembic's environment for the warehouse: run by ``securitycoach.warehouse.migrate`` on the connection it
passes in ``config.attributes`` (there is no alembic.ini; the URL, the search path and the lock are the
caller's). Each revision runs in its own transaction."""

from alembic import context

from securitycoach.warehouse.schema import metadata

config = context.config
if context.is_offline_mode():
    raise SystemExit("the warehouse migrations run online only (securitycoach.warehouse.migrate)")
context.configure(
    connection=config.attributes["connection"],
    target_metadata=metadata,
    transaction_per_migration=True,
    on_version_apply=config.attributes.get("on_version_apply", ()),
)
with context.begin_transaction():
    context.run_migrations()
