"""The storage-event watcher: object-storage notifications to Segment status.completion.

Sources: S3 notifications through SQS (directly, through SNS or through EventBridge), GCS
notifications through Pub/Sub (streaming pull, or a push subscription posting to the
watcher), and webhooks posted by MinIO and the SeaweedFS filer. Run it with
``python -m stereo_operator.watcher`` (console script ``stereo-watcher``); see ``config.py``
for the settings and ``rbac.yaml`` for the permissions it needs.
"""

from stereo_operator.watcher.app import Watcher, main
from stereo_operator.watcher.config import WatcherConfig, load_config

__all__ = ["Watcher", "WatcherConfig", "load_config", "main"]
