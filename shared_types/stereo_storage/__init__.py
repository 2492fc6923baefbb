"""Object storage for segment inputs and outputs: s3://, gs:// and file://.

store = open_store("s3://bucket/jobs/j1/", StorageConfig(endpoint_url=...))
store.upload_file("out.mp4", "s3://bucket/jobs/j1/seg-0001.mp4")
"""

from .base import ObjectStat, ObjectStore
from .config import StorageConfig
from .errors import AccessDenied, ObjectNotFound, StorageError, StorageUnavailable
from .factory import open_store

__all__ = [
    "AccessDenied",
    "ObjectNotFound",
    "ObjectStat",
    "ObjectStore",
    "StorageConfig",
    "StorageError",
    "StorageUnavailable",
    "open_store",
]
