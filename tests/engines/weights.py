"""Depth Anything V2 with random weights, saved in the published checkpoint's layout
(``config.json`` and ``model.safetensors``), so the loading code under test is the real one."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_depth_anything(root: Path, name: str = "Any_V2_S", *, seed: int = 0) -> Path:
    """A tiny randomly initialised model under ``root / name``; returns ``root``, the
    ``STEREO_DEPTH_WEIGHTS`` directory."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=16,
        neck_hidden_sizes=[8, 16, 32, 32],
        reassemble_hidden_size=32,
        head_hidden_size=8,
    )
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config)
    # The library's initialisation leaves the output near zero everywhere (the head ends in
    # a ReLU); He initialisation and a positive last bias make it vary with the picture, as
    # a trained model's does, so depth-dependent code paths have something to show.
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    torch.nn.init.constant_(model.head.conv3.bias, 0.5)
    model.save_pretrained(root / name)
    return root
