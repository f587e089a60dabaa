"""Structured JSON logs (Powertools Logger) with a correlation id per request."""
from __future__ import annotations

from aws_lambda_powertools.logging import Logger

logger = Logger(service="klassen-meetups")


def emit_metric(name: str, value: float, unit: str = "Count", namespace: str | None = None) -> dict | None:
    """One CloudWatch metric in Embedded Metric Format, written as a log line: Lambda's log
    becomes the metric, no PutMetricData permission needed. Namespace: POWERTOOLS_METRICS_NAMESPACE
    (the stack sets it); without one (local runs) nothing is written. Returns the record."""
    import json
    import os
    import time
    namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    if not namespace:
        return None
    record = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
        {"Namespace": namespace, "Dimensions": [[]], "Metrics": [{"Name": name, "Unit": unit}]}]}, name: value}
    print(json.dumps(record), flush=True)
    return record
