"""Launchers for real storage and messaging servers used by the test suites.

Each is a ManagedServer: ``start()``/``stop()`` or a ``with`` block, free ports
on 127.0.0.1, readiness waited on with a deadline, logs in its temp directory.
"""

from .gcs import FakeGcsServer, PubSubEmulator, find_fake_gcs_server, find_pubsub_emulator
from .moto import MotoServer, NotifiedBucket
from .process import ManagedServer, ServerStartError, free_port, http_status, wait_for
from .seaweedfs import SeaweedFS
from .webhook import ReceivedPost, WebhookReceiver

__all__ = [
    "FakeGcsServer",
    "ManagedServer",
    "MotoServer",
    "NotifiedBucket",
    "PubSubEmulator",
    "ReceivedPost",
    "SeaweedFS",
    "ServerStartError",
    "WebhookReceiver",
    "find_fake_gcs_server",
    "find_pubsub_emulator",
    "free_port",
    "http_status",
    "wait_for",
]
