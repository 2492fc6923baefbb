"""Timestamps in the forms the Kubernetes API expects."""

from __future__ import annotations

import datetime


def now_rfc3339(micro: bool = False) -> str:
    now = datetime.datetime.now(datetime.UTC)
    if micro:  # Lease renewTime is a MicroTime
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
