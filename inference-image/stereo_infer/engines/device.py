"""Choosing the torch device an engine computes on."""

import os

import torch

from stereo_infer.engines.base import DEVICE_AUTO
from stereo_infer.errors import TransientError

# Frames per forward pass when the job does not say: a GPU wants a batch to be
# busy; on a CPU the threads already share one frame, so batching buys nothing.
DEFAULT_BATCH_CUDA = 8
DEFAULT_BATCH_CPU = 1


def resolve_device(option: str = DEVICE_AUTO) -> torch.device:
    """``auto``: CUDA when ``torch.cuda.is_available()``, else the CPU.

    Asking for CUDA where torch sees none is a node problem (no GPU
    scheduled, a driver failure), not a bad request: another node may serve
    the same job, so it is reported as transient.
    """
    if option == DEVICE_AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(option)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TransientError(
                f"device {option!r} requested but torch sees no CUDA device"
                " (torch.cuda.is_available() is false)"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise TransientError(
                f"device {option!r} requested but only {torch.cuda.device_count()} CUDA"
                " device(s) are visible"
            )
    return device


def default_batch_size(device: torch.device) -> int:
    return DEFAULT_BATCH_CUDA if device.type == "cuda" else DEFAULT_BATCH_CPU


def cpu_threads() -> int:
    """Intra-op threads for compute on the CPU: half the usable cores, at least one.

    The other half decode and encode (ffmpeg, x264). Giving torch every core
    made it slower, not faster: its worker threads wait on each other at every
    operation while ffmpeg holds the cores (4-6x slower on 2 busy cores).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)
