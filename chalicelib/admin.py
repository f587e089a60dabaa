"""Command line for admins: python -m chalicelib.admin create-token NAME | revoke-token TOKEN |
erase EMAIL | privacy-backfill.

create-token prints only the token on stdout (TOKEN="$(python -m chalicelib.admin create-token NAME)");
logs go to stderr."""
from __future__ import annotations

import argparse
import logging
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
    erase = commands.add_parser("erase", help="erase everything held about an email address (prints what, as JSON)")
    erase.add_argument("email")
    erase.add_argument("--actor", default="command line", help="who asks, for the audit record")
    commands.add_parser("privacy-backfill", help="once after deploying privacy: hashes for lookups of older "
                                                 "records, then a retention run that also clears old activity")
    args = parser.parse_args(argv)
    _logs_to_stderr()
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
