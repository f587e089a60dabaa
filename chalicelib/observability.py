"""Structured JSON logs (Powertools Logger) with a correlation id per request."""
from __future__ import annotations

from aws_lambda_powertools.logging import Logger

logger = Logger(service="klassen-meetups")
