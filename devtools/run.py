"""`make run`: DynamoDB Local (data under .data/, unless AWS_ENDPOINT_URL_DYNAMODB is set),
the tables, the demo tour, an admin token, and the service on 127.0.0.1:$PORT. Ctrl-C stops all."""
from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

from devtools import dynamodb_local

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DATA_DIR", str(ROOT / ".data")))


def _stop_on_terminate(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_terminate)  # stop everything, as Ctrl-C does
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    ddb = store = None
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        print(f"Using DynamoDB at {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}")
    else:
        store = dynamodb_local.RamWorkingCopy(DATA / "dynamodb")
        ddb = dynamodb_local.start(data_dir=store.open(), log_path=DATA / "dynamodb.log")
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ddb.endpoint
        print(f"DynamoDB Local at {ddb.endpoint}, data in {DATA / 'dynamodb'}")
    os.environ.update(dynamodb_local.local_aws_environment(os.environ["AWS_ENDPOINT_URL_DYNAMODB"]))
    os.environ.setdefault("STAGE", "local")
    os.environ.setdefault("MAIL_BACKEND", "file")
    os.environ.setdefault("MAIL_DIR", str(DATA / "mail"))
    os.environ.setdefault("SIGNING_SECRET", _local_secret())
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    port = int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    local_env = _write_local_environment()
    try:
        return _serve(port)
    finally:
        local_env.unlink(missing_ok=True)
        if ddb:
            ddb.stop()
        if store:
            store.close()


def _write_local_environment() -> Path:
    """What `python -m chalicelib.admin` needs to reach this run's database (the endpoint, its
    dummy credentials, the table prefix), under DATA_DIR while the service runs (removed at the end)."""
    import json
    from chalicelib.admin import LOCAL_ENVIRONMENT_FILE
    names = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
             "TABLE_PREFIX", "STAGE")
    values = {name: os.environ[name] for name in names if os.environ.get(name)}
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / LOCAL_ENVIRONMENT_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def _local_secret() -> str:
    """A signing secret kept under .data/, so manage links survive a restart."""
    path = DATA / "signing-secret"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _serve(port: int) -> int:
    from devtools import demo_tour, serve, tables
    from chalicelib.config import get_settings

    settings = get_settings()
    created = tables.create_tables(settings.table_prefix)
    if created:
        print(f"Created tables: {', '.join(created)}")
    from chalicelib import migrate_waitlists  # old .data/: one-item lines become W# entries (idempotent)
    moved = migrate_waitlists.migrate_all()
    if moved:
        print(f"Waitlists migrated: {len(moved)} meetups, {sum(moved.values())} people")
    from chalicelib import migrate_keys  # old .data/: records under the old national keys get their shard
    keyed = migrate_keys.migrate_all()
    if any(keyed.values()):
        print(f"Keys migrated: {keyed}")
    print(f"Demo tour: {demo_tour.load()} meetups added")
    if not os.environ.get("ADMIN_TOKEN"):
        from chalicelib import auth
        print(f"Admin token (stored hashed; shown once): {auth.create_token('make run')}")
    server = serve.build_server("127.0.0.1", port)
    jobs = serve.scheduled_jobs()
    for job in jobs:
        job.start()
    print(f"Serving on http://127.0.0.1:{port}  (mail: {settings.mail_backend} -> {settings.mail_dir}); Ctrl-C stops")
    sys.stdout.flush()
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopping")
    finally:
        for job in jobs:
            job.stopped.set()
        server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
