"""The console's tables (made by common/migrations/) and one migrated engine per database."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import sqlalchemy as sa

from common import database, migrations

metadata = sa.MetaData()
staff_users = sa.Table(
    "staff_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("session_version", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_sign_in_at", sa.DateTime(timezone=True)),
    # The second factor (migration 0009_two_factor; staff/service/second_factor.py).
    sa.Column("totp_secret", sa.String(255)),
    sa.Column("totp_pending_secret", sa.String(255)),
    sa.Column("totp_enabled_at", sa.DateTime(timezone=True)),
    sa.Column("totp_last_step", sa.BigInteger),
    # Where e-mail notifications go (migration 0011_notifications; set by an admin).
    sa.Column("email", sa.String(254)),
)
recovery_codes = sa.Table(
    "staff_recovery_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff_users.id"), nullable=False),
    sa.Column("code_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)
login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("name_key", sa.String(64), nullable=False),
    sa.Column("address_key", sa.String(64), nullable=False),
    sa.Column("succeeded", sa.Boolean, nullable=False),
)
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("staff_name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(100), nullable=False, default=""),
    sa.Column("detail", sa.String(200), nullable=False, default=""),
)
review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text_key", sa.String(64), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("intent", sa.String(100)),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
)


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC time (SQLite gives them back without a zone)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@lru_cache(maxsize=4)
def engine(url: str) -> sa.engine.Engine:
    """The database at `url`, upgraded to the newest schema (once per process)."""
    migrations.upgrade(url)
    return database.create_engine(url)


# Check-and-train runs and the models made live (staff/service/models.py; migration 0005).
training_runs = sa.Table(
    "training_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(200), nullable=False, default=""),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("active", sa.Integer, unique=True),  # 1 while queued or running: one at a time
    sa.Column("pid", sa.Integer),
    sa.Column("inputs_digest", sa.String(64)),
    sa.Column("archive", sa.String(500)),
    sa.Column("sha256", sa.String(64)),
    sa.Column("train_seconds", sa.Float),
    sa.Column("report", sa.Text),
    sa.Column("publishable", sa.Boolean, nullable=False, default=False),
)
published_models = sa.Table(
    "published_models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("training_run_id", sa.Integer, sa.ForeignKey("training_runs.id"), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("archive", sa.String(500), nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("live_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("withdrawn_by", sa.String(64)),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
)
# The assistant as installed (one row, slot 1): what visitors get while nothing is published.
installed_model = sa.Table(
    "installed_model",
    metadata,
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("archive", sa.String(500), nullable=False),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
