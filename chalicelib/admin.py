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

from chalicelib import auth
from chalicelib.observability import logger


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
