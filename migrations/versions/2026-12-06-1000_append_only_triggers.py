"""append-only tables: the database refuses any UPDATE of the ledger, credited sources,
payout decisions, the audit log, rule firings and what ended them (``infra.append_only``)

Revision ID: 0032_append_only_triggers
Revises: 0031_rule_activations
Create Date: 2026-12-06 10:00:00

Before, only the ORM refused: a bulk ``update()`` or a hand-written statement changed such
a row without a word. The tables are named here rather than read from the models, so the
migration stays what it was when it ran.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0032_append_only_triggers"
down_revision: str | None = "0031_rule_activations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "earning_entry",
    "earning_source",
    "payout_decision",
    "audit_entry",
    "incentive_rule_firing",
    "incentive_rule_firing_end",
)
FUNCTION = "refuse_append_only_update"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.execute(
            f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '% rows are append-only (UPDATE refused)', TG_TABLE_NAME; "
            "END $$"
        )
    for table in TABLES:
        name = f"{table}_append_only"
        if sqlite:
            op.execute(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} BEGIN SELECT "
                f"RAISE(ABORT, '{table} rows are append-only (UPDATE refused)'); END"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
            )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in TABLES:
        name = f"{table}_append_only"
        op.execute(f"DROP TRIGGER {name}" if sqlite else f"DROP TRIGGER {name} ON {table}")
    if not sqlite:
        op.execute(f"DROP FUNCTION {FUNCTION}()")
