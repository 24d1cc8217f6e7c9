"""From a `postgres:` resource in a schedule to the parts the engine needs:
its source DSN, its store, and the key wrapper that protects its backups."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drkit.crypto import KeyWrapper, LocalKeyFile
from drkit.errors import IntegrityError, UsageError
from drkit.store import BackupStore, FileStore, parse_store_uri

if TYPE_CHECKING:
    from drkit.config import Config
    from drkit.jobs.context import Context

KEY_WARNING = (
    "[bold red]NEW BACKUP KEY[/] created at {path}. Backups made with it are UNREADABLE without it: "
    "copy it somewhere safe, away from the backups (a password manager or a secrets vault), now."
)


@dataclass(frozen=True)
class PgResource:
    schedule: str
    spec: Any  # drkit.config models: PostgresResource

    @property
    def name(self) -> str:
        return str(self.spec.name)


def iter_pg_resources(cfg: Config, schedule: str | None = None) -> Iterator[PgResource]:
    names = [schedule] if schedule else sorted(cfg.schedules)
    for name in names:
        sched = cfg.schedule(name)
        for res in sched.postgres:
            yield PgResource(name, res)


def find_pg_resource(cfg: Config, name: str, schedule: str | None = None) -> PgResource:
    found = [r for r in iter_pg_resources(cfg, schedule) if r.name == name]
    if not found:
        have = ", ".join(sorted({r.name for r in iter_pg_resources(cfg, schedule)})) or "none"
        raise UsageError(f"no postgres resource named {name!r} in {cfg.config_dir}/schedules (have: {have})")
    if len(found) > 1:
        where = ", ".join(r.schedule for r in found)
        raise UsageError(f"postgres resource {name!r} is in several schedules ({where}): name one with --schedule")
    return found[0]


def source_dsn(res: PgResource) -> str:
    var = str(res.spec.dsn_env)
    value = os.environ.get(var)
    if not value:
        raise UsageError(
            f"{var} is not set: export it with the connection string of {res.name} "
            f"(schedules/{res.schedule}.yaml: postgres[{res.name}].dsn_env)"
        )
    return value


def open_store(cfg: Config, res: PgResource) -> BackupStore:
    scheme, rest = parse_store_uri(str(res.spec.store))
    if scheme == "file":
        return FileStore(cfg.resolve_path(rest))
    from drkit.aws.s3store import S3Store  # the embedded default works without AWS
    from drkit.aws.session import SessionFactory

    bucket, _, prefix = rest.partition("/")
    client = SessionFactory.from_schedule(cfg.schedule(res.schedule)).client("s3")
    return S3Store(client, bucket, prefix)


def key_wrapper(ctx: Context, res: PgResource, *, create: bool) -> KeyWrapper:
    """The configured key; a key file is created on first backup (and announced loudly)."""
    enc = res.spec.encryption
    cfg = ctx.config()
    if getattr(enc, "key_file", None):
        path = cfg.resolve_path(str(enc.key_file))
        return LocalKeyFile(path, create=create, on_created=lambda p: ctx.say(KEY_WARNING.format(path=p)))
    from drkit.aws.kms import KmsKeyWrapper
    from drkit.aws.session import SessionFactory

    sched = cfg.schedule(res.schedule)
    region = sched.aws.region if sched.aws is not None else None
    client = SessionFactory.from_schedule(sched).client("kms", region=region)
    return KmsKeyWrapper(client, str(enc.kms_key))


def wrapper_resolver(ctx: Context, res: PgResource) -> Any:
    """Resolve a backup header's (kind, key_id) to the configured key, or say which key it needs."""
    configured = key_wrapper(ctx, res, create=False)

    def resolve(kind: str, key_id: str) -> KeyWrapper:
        if (kind, key_id) != (configured.kind, configured.key_id):
            raise IntegrityError(
                f"wrong key: the backup was encrypted with {key_id} but {res.name} is configured with "
                f"{configured.key_id}; point encryption at the key the backup was made with"
            )
        return configured

    return resolve
