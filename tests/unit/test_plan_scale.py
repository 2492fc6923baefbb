"""A plan of 10,000 segments: made from a packet index, written, read back, fast."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

from stereo_infer.framerate import FrameRate
from stereo_infer.packets import Packet, PacketIndex
from stereo_infer.planner import constant_grid, plan_windows
from stereo_types.plan import PlannedSegment, SplitPlan

SEGMENTS = 10_000
FRAMES_PER_SEGMENT = 24
KEYFRAME_EVERY = 48  # keyframes rarer than segments: every other segment shares one


def test_ten_thousand_segments_plan_in_seconds(tmp_path: Path) -> None:
    # A film at 24 fps with B-frames: decode order I P B B ..., pts ticks of 512.
    total = SEGMENTS * FRAMES_PER_SEGMENT
    packets = tuple(
        Packet(pts=512 * n, dts=512 * n - 1024, key=n % KEYFRAME_EVERY == 0, size=1000)
        for n in range(total)
    )
    index = PacketIndex(time_base=Fraction(1, 12288), packets=packets)
    rate = FrameRate(num=24, den=1)
    started = time.monotonic()
    windows = plan_windows(
        index,
        constant_grid(index.frames()),
        0,
        rate,
        segment_frames=FRAMES_PER_SEGMENT,
        pre_roll=8,
        start_time=0.0,
    )
    plan = SplitPlan(
        source="s3://films/long.mkv",
        fps_num=24,
        fps_den=1,
        frame_count=total,
        width=1920,
        height=1080,
        duration_seconds=total / 24,
        segment_seconds=1.0,
        segment_frames=FRAMES_PER_SEGMENT,
        segments=[
            PlannedSegment(
                index=j,
                input_uri="s3://films/long.mkv",
                window=window,
                output_uri=f"s3://ws/ns/long/uid/segments/{j:05d}/output.mp4",
                start_frame=start,
                frame_count=window.frame_count,
                pre_roll_frames=window.pre_roll_frames,
                start_seconds=start / 24,
                duration_seconds=window.frame_count / 24,
            )
            for j, (start, window) in enumerate(windows)
        ],
    )
    path = tmp_path / "plan.json"
    path.write_text(plan.model_dump_json(by_alias=True))
    again = SplitPlan.model_validate_json(path.read_bytes())
    elapsed = time.monotonic() - started
    assert len(again.segments) == SEGMENTS
    assert sum(s.frame_count for s in again.segments) == total
    # Odd segments start mid-GOP: they decode from the keyframe a segment earlier.
    odd = again.segments[1].window
    assert odd.lead_frames == FRAMES_PER_SEGMENT - 8 and odd.seek_seconds is None
    later = again.segments[11].window
    assert later.seek_seconds is not None and later.lead_frames == FRAMES_PER_SEGMENT - 8
    # The plan is a file, not argv: about 400 bytes a segment.
    assert path.stat().st_size < 600 * SEGMENTS
    assert elapsed < 30, f"{elapsed:.1f} s for {SEGMENTS} segments"
