"""Command line for operators: python -m chalicelib.admin create-token NAME | revoke-token TOKEN |
erase EMAIL | privacy-backfill |
drain-stream-failures [--queue-url URL] (the outbox stream's on-failure queue, chalicelib.stream_failures).

create-token prints only the token on stdout (TOKEN="$(python -m chalicelib.admin create-token NAME)");
logs go to stderr."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from chalicelib.observability import logger


LOCAL_ENVIRONMENT_FILE = "local-environment.json"  # written by `make run` (devtools/run.py) under DATA_DIR


class Unreachable(Exception):
    """The command cannot reach a database: one line for the operator, no traceback."""


def _local_environment() -> None:
    """Locally, without AWS_ENDPOINT_URL_DYNAMODB: the database `make run` is serving (the endpoint,
    credentials and table prefix it wrote under DATA_DIR). STAGE=local without it is an error;
    with STAGE unset and no such file the command talks to AWS, as an operator's would."""
    import json
    from pathlib import Path
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return
    stage = os.environ.get("STAGE")
    if stage not in (None, "", "local"):
        return
    data = Path(os.environ.get("DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
    path = data / LOCAL_ENVIRONMENT_FILE
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        if stage == "local":
            raise Unreachable(f"no local database: start `make run` first (it writes {path}), "
                              "or set AWS_ENDPOINT_URL_DYNAMODB") from None
        return
    except (OSError, ValueError) as exc:
        raise Unreachable(f"cannot read {path}: {exc}") from None
    for name, value in values.items():
        if name.startswith("AWS_"):
            os.environ[name] = str(value)  # DynamoDB Local's endpoint and its dummy credentials
        else:
            os.environ.setdefault(name, str(value))


def _logs_to_stderr() -> None:
    """The Powertools logger writes to stdout (where Lambda wants it); here stdout is the answer."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-token", help="create an admin token and print it once")
    create.add_argument("name", help="who the token is for")
    revoke = commands.add_parser("revoke-token", help="revoke an admin token")
    revoke.add_argument("token")
    drain = commands.add_parser("drain-stream-failures",
                                help="put the messages of failed outbox stream batches back in the retry queue")
    drain.add_argument("--queue-url", default=os.environ.get("OUTBOX_STREAM_FAILURES_QUEUE"),
                       help="the stack's OutboxStreamFailuresQueueUrl output (or OUTBOX_STREAM_FAILURES_QUEUE)")
    erase = commands.add_parser("erase", help="erase everything held about an email address (prints what, as JSON)")
    erase.add_argument("email")
    erase.add_argument("--actor", default="command line", help="who asks, for the audit record")
    commands.add_parser("privacy-backfill", help="once after deploying privacy: hashes for lookups of older "
                                                 "records, then a retention run that also clears old activity")
    args = parser.parse_args(argv)
    _logs_to_stderr()
    try:
        _local_environment()
        return _run(args, parser)
    except Unreachable as problem:
        print(f"python -m chalicelib.admin: {problem}", file=sys.stderr)
        return 2
    except Exception as exc:  # no traceback for an operator: what failed, in one line
        from chalicelib.errors import DomainError
        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or "AWS"
        reason = str(exc.message) if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        print(f"python -m chalicelib.admin: {args.command} failed (DynamoDB at {endpoint}): "
              f"{' '.join(reason.split())[:300]}", file=sys.stderr)
        return 1


def _run(args, parser) -> int:
    from chalicelib import auth  # after _local_environment: the models read their endpoint on import
    if args.command == "drain-stream-failures":
        if not args.queue_url:
            parser.error("--queue-url (or OUTBOX_STREAM_FAILURES_QUEUE) is required")
        from chalicelib import stream_failures
        print(json.dumps(stream_failures.drain(args.queue_url)))
        return 0
    if args.command in ("erase", "privacy-backfill"):
        return _privacy(args)
    if args.command == "create-token":
        print(auth.create_token(args.name))
        return 0
    if auth.revoke_token(args.token):
        print("revoked")
        return 0
    print("no such token", file=sys.stderr)
    return 1


def _privacy(args) -> int:
    import json

    from chalicelib import privacy
    from chalicelib.errors import ValidationFailed
    if args.command == "privacy-backfill":
        print(json.dumps(privacy.backfill(), indent=2))
        return 0
    try:
        email = privacy.read_erasure_request({"email": args.email})
    except ValidationFailed as error:
        print(json.dumps(error.body()), file=sys.stderr)
        return 2
    print(json.dumps(privacy.erase_address(email, actor=f"cli: {args.actor}"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
