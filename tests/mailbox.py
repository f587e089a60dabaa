"""Reads the .eml files the `file` mail backend wrote, for assertions on what was sent."""
from __future__ import annotations

import email
import email.policy
import os
from pathlib import Path


def messages_to(address: str) -> list[email.message.EmailMessage]:
    folder = Path(os.environ["MAIL_DIR"])
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address.lower() in str(message["To"]).lower():
            found.append(message)
    return found


def raw_messages_to(address: str) -> list[bytes]:
    """The .eml files to `address` as written, bytes and all (headers as a mail client reads them)."""
    folder = Path(os.environ["MAIL_DIR"])
    return [path.read_bytes() for path in sorted(folder.glob("*.eml")) if folder.exists()
            and address.lower().encode() in path.read_bytes().split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lower()]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def attachments_of(message) -> list:
    return list(message.iter_attachments())
