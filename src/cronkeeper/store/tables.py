"""Every table of the ledger (DESIGN §2), with one naming convention; Alembic's target.

Indexes worth knowing:
- `uq_runs_job_id_scheduled_for` makes a slot a run at most once (exactly-once firing);
- `ix_runs_job_page` / `ix_runs_project_page` (by creation) and `ix_runs_job_slot_page` /
  `ix_runs_project_slot_page` (by slot) serve keyset pagination of run history;
- `ix_runs_queued` (partial: status = 'queued') is what workers claim from;
- `ix_runs_running_lease` (partial: status = 'running') finds runs whose node died;
- `ix_jobs_next_fire` / `ix_jobs_deadline` (partial: active jobs) drive scheduler and monitor.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from cronkeeper.store.types import JSONType, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ACTIVE = text("status = 'active'")

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("retention_days", Integer, nullable=False, server_default="30"),
    Column("ping_key", String(64), nullable=False, unique=True),
    Column("badge_key", String(64), nullable=False, unique=True),  # public, read-only badges
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("schedule", String(200)),
    Column("timezone", String(64), nullable=False),
    Column("spec", JSONType, nullable=False),  # the whole JobSpec body, secrets in clear
    Column("queue", String(64), nullable=False, server_default="default"),
    Column("monitor_state", String(16), nullable=False, server_default="new"),
    Column("ping_uuid", Uuid, unique=True),
    Column("next_fire_at", UTCDateTime),  # the scheduler's due-time index
    Column("deadline_at", UTCDateTime),  # the monitor's next check
    Column("state_since", UTCDateTime),  # when monitor_state last changed (its flip)
    Column("fail_streak", Integer, nullable=False, server_default="0"),
    Column("ok_streak", Integer, nullable=False, server_default="0"),
    Column("realert_at", UTCDateTime),  # next "still down" reminder while down
    Column("flapping_since", UTCDateTime),  # set while the job flips too often
    Column("last_run_id", Uuid),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("project_id", "slug"),
    Index("ix_jobs_next_fire", "next_fire_at", sqlite_where=ACTIVE, postgresql_where=ACTIVE),
    Index("ix_jobs_deadline", "deadline_at", sqlite_where=ACTIVE, postgresql_where=ACTIVE),
    Index("ix_jobs_project_kind_status", "project_id", "kind", "status"),
)

job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_job_tags_tag", "tag"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("roles", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Uuid, primary_key=True),  # UUIDv7: sorts by creation time
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("scheduled_for", UTCDateTime),
    Column("queue", String(64), nullable=False, server_default="default"),
    Column("not_before", UTCDateTime),  # a retry waits until then
    Column("queued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("duration_ms", BigInteger),
    Column("drift_ms", BigInteger),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="1"),
    Column("failure_reason", String(32)),
    Column("error", Text),
    Column("payload", JSONType),
    Column("trace_id", String(32)),
    Column("replay_of", Uuid),
    Column("node", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("ping_rid", String(64)),
    Column("during_outage", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    # scheduled_for when the run has a slot, else created_at: the "by slot" sort key.
    Column("ordered_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "scheduled_for"),
    Index("ix_runs_job_page", "job_id", "created_at", "id"),
    Index("ix_runs_job_slot_page", "job_id", "ordered_at", "id"),
    Index("ix_runs_project_page", "project_id", "created_at", "id"),
    Index("ix_runs_project_slot_page", "project_id", "ordered_at", "id"),
    Index("ix_runs_job_status_page", "job_id", "status", "created_at", "id"),
    Index(
        "ix_runs_queued",
        "queue",
        "not_before",
        "created_at",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "ix_runs_running_lease",
        "lease_expires_at",
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
    Index("ix_runs_created_at", "created_at"),  # retention prunes oldest first
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("failure_reason", String(32)),
    Column("status_code", Integer),
    Column("exit_code", Integer),
    Column("latency_ms", BigInteger),
    Column("body_preview", Text),
    Column("response_headers", JSONType),
    Column("error_class", String(200)),
    Column("error", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("run_id", "number"),
)

events = Table(
    "events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("sequence_num", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("message", Text),
    Column("data", JSONType),
    UniqueConstraint("run_id", "sequence_num"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_reason", String(32)),
    Column("error", Text),
    Column("output", JSONType),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("duration_ms", BigInteger),
    UniqueConstraint("run_id", "name"),
)

flips = Table(
    "flips",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("old_state", String(16), nullable=False),
    Column("new_state", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("run_id", Uuid),
    Column("created_at", UTCDateTime, nullable=False),  # back-dated to the exact deadline
    # why this flip alerts nobody: maintenance, depends_on, during_outage, flapping, paused
    Column("suppressed_reason", String(32)),
    Index("ix_flips_job_created", "job_id", "created_at"),
)

# The notifier's queue: one row per message the monitor wants sent about a job (a flip
# to down or up, a "still down" reminder, a flapping notice). `deliver_at` is the flip
# time plus the job's alert delay; a down alert whose job is up again by then is
# cancelled, not sent.
alerts = Table(
    "alerts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("flip_id", ForeignKey("flips.id", ondelete="CASCADE")),
    Column("run_id", Uuid),
    Column("event", String(16), nullable=False),  # down | up | flapping
    Column("reminder", Boolean, nullable=False, server_default="0"),  # realert_every
    Column("reason", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deliver_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Column("outcome", String(16)),  # sent | cancelled | no_channels
    Index(
        "ix_alerts_pending",
        "deliver_at",
        sqlite_where=text("processed_at IS NULL"),
        postgresql_where=text("processed_at IS NULL"),
    ),
    Index("ix_alerts_job_created", "job_id", "created_at"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("config", JSONType, nullable=False),
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("disabled_reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("project_id", "name"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE")),  # null: a test message
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(16), nullable=False),
    Column("payload", JSONType),  # what was (or will be) sent, secrets masked
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("latency_ms", BigInteger),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    Index("ix_notifications_channel_created", "channel_id", "created_at"),
    Index(
        "ix_notifications_pending",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# The channels' send log: one row per message sent to a channel (a digest is ONE row for
# every notification it carries), written when the notifier claims the message. Every
# notifier process counts a channel's rows inside the rate limit's window, under the
# channel's row lock, so the limit holds for the channel across processes
# (store/channel_sends.py). Rows older than the window are pruned as messages are claimed.
channel_sends = Table(
    "channel_sends",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("notification_count", Integer, nullable=False),  # 1, or a digest's size
    Index("ix_channel_sends_channel_sent", "channel_id", "sent_at"),
)

# A period in which jobs are not alerted (`mute`) or, for jobs we run, not fired
# (`skip`: their slots become `skipped` runs). One-off (`starts_at`..`ends_at`) or
# recurring (`schedule` + `duration_s` in `timezone`). `job_slugs`/`tags` narrow it;
# both empty means every job of the project.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("mode", String(16), nullable=False),  # mute | skip
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime),
    Column("schedule", String(200)),
    Column("duration_s", Integer),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("job_slugs", JSONType, nullable=False),
    Column("tags", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("project_id", "name"),
)

# Small facts the processes share: the monitor's last tick (to see our own outages), the
# dashboard's session-signing secret.
system_values = Table(
    "system_values",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("project_id", ForeignKey("projects.id", ondelete="SET NULL")),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("ip", String(64)),
    Column("action", String(32), nullable=False),
    Column("target", String(200), nullable=False),
    Column("diff", JSONType, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    Index("ix_audit_log_project_at", "project_id", "at", "id"),
)
