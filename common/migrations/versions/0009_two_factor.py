"""Staff sign in with a second factor: an authenticator app's secret and one-time recovery codes.

Revision ID: 0009_two_factor
Revises: 0008_privacy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_two_factor"
down_revision = "0008_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the second factor's columns to staff_users and the staff_recovery_codes table.

    Accounts made before have no second factor: admins are asked to set one up at their next
    sign-in, everyone else may turn it on from their account page.
    """
    with op.batch_alter_table("staff_users") as batch:
        # Encrypted with a key derived from STAFF_SECRET_KEY (staff/service/second_factor.py).
        batch.add_column(sa.Column("totp_secret", sa.String(255)))
        batch.add_column(sa.Column("totp_pending_secret", sa.String(255)))  # while setting it up
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True)))
        # The newest 30-second step whose code was used: a code works once.
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger))
    op.create_table(
        "staff_recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff_users.id"), nullable=False, index=True),
        sa.Column("code_hash", sa.String(255), nullable=False),  # Argon2, as passwords
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    """Drop the recovery codes and the second factor's columns (the accounts stay, password only)."""
    op.drop_table("staff_recovery_codes")
    with op.batch_alter_table("staff_users") as batch:
        for column in ("totp_last_step", "totp_enabled_at", "totp_pending_secret", "totp_secret"):
            batch.drop_column(column)
