"""Pure planning arithmetic on synthetic packet indexes, no ffmpeg."""

from fractions import Fraction

import pytest

from stereo_infer.errors import BadInputError
from stereo_infer.framerate import FrameRate
from stereo_infer.packets import Packet, PacketIndex
from stereo_infer.planner import (
    Grid,
    constant_grid,
    plan_windows,
    segment_frame_count,
    variable_grid,
)
from stereo_types.plan import GridTiming, SourceWindow

RATE = FrameRate(num=30, den=1)
KEY_SIZE, FRAME_SIZE = 1000, 100


def make_index(
    time_base: Fraction, decode_order: list[tuple[int, bool]], *, dts_start: int = 0
) -> PacketIndex:
    """Packets (pts, keyframe) in decode order; dts counts up one tick per packet from
    ``dts_start``; keyframes are bigger."""
    return PacketIndex(
        time_base=time_base,
        packets=tuple(
            Packet(pts=pts, dts=dts_start + i, key=key, size=KEY_SIZE if key else FRAME_SIZE)
            for i, (pts, key) in enumerate(decode_order)
        ),
    )


def windows(
    index: PacketIndex,
    segment_frames: int,
    pre_roll: int = 0,
    *,
    grid: Grid | None = None,
    start_time: float = 0.0,
    rate: FrameRate = RATE,
) -> list[tuple[int, SourceWindow]]:
    return plan_windows(
        index,
        grid or constant_grid(index.frames()),
        0,
        rate,
        segment_frames=segment_frames,
        pre_roll=pre_roll,
        start_time=start_time,
    )


def closed_gops() -> PacketIndex:
    """Ten frames, no reordering, keyframes at 0 and 6."""
    return make_index(Fraction(1, 30), [(i, i in (0, 6)) for i in range(10)])


def open_gop() -> PacketIndex:
    """Twelve frames, B-frames; the keyframe at 6 is an open-GOP one: 4 and 5 are decoded
    after it but shown before it (leading pictures)."""
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 11, 10]
    return make_index(Fraction(1, 10), [(pts, pts in (0, 6)) for pts in order], dts_start=-2)


def test_windows_cover_every_frame_once_and_the_last_is_shorter() -> None:
    planned = windows(closed_gops(), 4)
    assert [start for start, _ in planned] == [0, 4, 8]
    assert [w.frame_count for _, w in planned] == [4, 4, 2]
    assert [(w.first_pts, w.last_pts) for _, w in planned] == [(0, 3), (4, 7), (8, 9)]
    assert all(w.pre_roll_frames == 0 and w.grid is None for _, w in planned)
    assert all((w.time_base_num, w.time_base_den) == (1, 30) for _, w in planned)


def test_a_window_decodes_from_the_last_keyframe_at_or_before_its_first_frame() -> None:
    (_, first), (_, shared), (_, later) = windows(closed_gops(), 4)
    # The first keyframe needs no seek: decoding starts at the first packet.
    assert (first.seek_seconds, first.lead_frames) == (None, 0)
    # Frame 4 has no keyframe of its own: it shares frame 0's, and decodes 0..3 first.
    assert (shared.seek_seconds, shared.lead_frames) == (None, 4)
    # Frame 8 decodes from the keyframe at 6 (dts 6 at 1/30 s).
    assert later.seek_seconds == pytest.approx(6 / 30)
    assert later.lead_frames == 2
    # What a range read fetches: the packets from the keyframe to the last kept frame.
    assert first.bytes == KEY_SIZE + 3 * FRAME_SIZE
    assert shared.bytes == 2 * KEY_SIZE + 6 * FRAME_SIZE
    assert later.bytes == KEY_SIZE + 3 * FRAME_SIZE


def test_a_window_starting_on_a_leading_picture_decodes_from_the_keyframe_before() -> None:
    index = open_gop()
    by_start = dict(windows(index, 5))
    # Frame 5 shows before the keyframe at 6 (and is decoded after it): only the keyframe at
    # 0 reaches it.
    assert by_start[5].first_pts == 5
    assert (by_start[5].seek_seconds, by_start[5].lead_frames) == (None, 5)
    # Frame 10 decodes from the keyframe at 6, whose dts is 2 ticks (0.2 s).
    assert by_start[10].seek_seconds == pytest.approx(0.2)
    assert by_start[10].lead_frames == 4
    assert by_start[10].frame_count == 2
    # A window starting at the keyframe itself seeks to it and decodes nothing before it.
    at_key = dict(windows(index, 6))[6]
    assert at_key.seek_seconds == pytest.approx(0.2)
    assert (at_key.first_pts, at_key.lead_frames) == (6, 0)


def test_open_gop_pre_roll_moves_the_window_start() -> None:
    by_start = dict(windows(open_gop(), 5, pre_roll=2))
    assert (by_start[5].first_pts, by_start[5].pre_roll_frames) == (3, 2)
    assert by_start[5].output_frames == 7
    assert (by_start[5].seek_seconds, by_start[5].lead_frames) == (None, 3)
    assert (by_start[10].first_pts, by_start[10].lead_frames) == (8, 2)
    assert by_start[10].seek_seconds == pytest.approx(0.2)


def test_pre_roll_stops_at_frame_zero() -> None:
    index = make_index(Fraction(1, 30), [(i, i == 0) for i in range(10)])
    planned = windows(index, 3, pre_roll=5)
    assert [w.pre_roll_frames for _, w in planned] == [0, 3, 5, 5]
    assert [w.first_pts for _, w in planned] == [0, 0, 1, 4]
    assert [w.lead_frames for _, w in planned] == [0, 0, 1, 4]
    assert [w.frame_count for _, w in planned] == [3, 3, 3, 1]


def test_segment_longer_than_the_video() -> None:
    [(start, window)] = windows(closed_gops(), 300, pre_roll=8)
    assert (start, window.frame_count, window.pre_roll_frames) == (0, 10, 0)
    assert (window.first_pts, window.last_pts, window.seek_seconds) == (0, 9, None)


def test_first_keyframe_needs_no_seek_in_a_source_that_starts_late() -> None:
    # MPEG-TS style: 90 kHz, the file starts at 1.4 s, B-frames (dts one frame behind pts).
    step, start = 3000, 126000
    frames = [(start + i * step, i % 30 == 0) for i in range(45)]
    index = PacketIndex(
        time_base=Fraction(1, 90000),
        packets=tuple(Packet(pts=p, dts=p - step, key=k, size=10) for p, k in frames),
    )
    planned = dict(windows(index, 20, start_time=1.4))
    assert planned[0].seek_seconds is None
    assert planned[20].seek_seconds is None
    # From the file's start to the keyframe's dts, rounded down to the microsecond so it
    # cannot land past it: (216000 - 3000) / 90000 - 1.4 = 0.96666...
    assert planned[40].seek_seconds == 0.966666
    assert planned[40].lead_frames == 10


def test_negative_pre_roll_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="pre-roll: must be an integer >= 0"):
        windows(closed_gops(), 4, pre_roll=-1)


def test_variable_grid_rounds_halves_away_from_zero() -> None:
    # 50 Hz ticks onto a 25 fps grid: odd ticks fall on halves, and round up.
    index = make_index(Fraction(1, 50), [(p, p == 0) for p in (0, 1, 2, 3, 5, 8)])
    grid = variable_grid(index.frames(), index.time_base, FrameRate(num=25, den=1), 0, 10)
    assert grid.slot_of == (0, 1, 1, 2, 3, 4)
    assert grid.slots == 5
    # Each slot shows the last frame rounding to it: frame 1 (tick 1) is never shown.
    assert [grid.frame_at(slot) for slot in range(grid.slots)] == [0, 2, 3, 4, 5]


def test_variable_grid_counts_slots_from_the_files_start() -> None:
    # The first frame at 0.2 s is slot 5 from the file's start; output starts there.
    index = make_index(Fraction(1, 50), [(p, p == 10) for p in (10, 11, 13, 16)])
    rate = FrameRate(num=25, den=1)
    grid = variable_grid(index.frames(), index.time_base, rate, 0, 18)
    assert (grid.zero_pts, grid.origin_slot) == (0, 5)
    assert grid.slot_of == (0, 1, 2, 3) and grid.slots == 4
    # A file that starts a tick later moves every frame half a slot: other rounding.
    later = variable_grid(index.frames(), index.time_base, rate, 1, 18)
    assert later.slot_of == (0, 0, 1, 3)
    # A negative timestamp on a half rounds away from zero too.
    early = make_index(Fraction(1, 50), [(p, p == -1) for p in (-1, 1)])
    assert variable_grid(early.frames(), early.time_base, rate, 0, 2) == (
        Grid(slots=2, slot_of=(0, 2), zero_pts=0, origin_slot=-1)
    )


def test_variable_grid_windows_start_on_their_slot_and_see_the_next_frame() -> None:
    index = make_index(Fraction(1, 50), [(p, p == 0) for p in (0, 1, 2, 3, 5, 8)])
    rate = FrameRate(num=25, den=1)
    grid = variable_grid(index.frames(), index.time_base, rate, 0, 10)
    planned = windows(index, 2, pre_roll=1, grid=grid, rate=rate)
    assert [start for start, _ in planned] == [0, 2, 4]
    timings = [w.grid for _, w in planned]
    assert timings == [
        GridTiming(rate_num=25, rate_den=1, zero_pts=0, start_slot=0),
        GridTiming(rate_num=25, rate_den=1, zero_pts=0, start_slot=1),
        GridTiming(rate_num=25, rate_den=1, zero_pts=0, start_slot=3),
    ]
    # Slot 1 shows frame 2 (tick 2); the rate filter decides the last slot by the frame
    # after it, so a window keeps one frame more (but never past the last).
    assert [(w.first_pts, w.last_pts) for _, w in planned] == [(0, 3), (2, 8), (5, 8)]


def test_variable_grid_rounds_like_ffmpeg_when_the_first_frame_is_off_the_grid() -> None:
    # Frames at 0.5, 1.0 and 1.5 slots: ffmpeg rounds them to 1, 1 and 2, so the first
    # output slot (1) shows the second frame and the first is never shown.
    index = make_index(Fraction(1, 50), [(p, p == 1) for p in (1, 2, 3)])
    grid = variable_grid(index.frames(), index.time_base, FrameRate(num=25, den=1), 0, 4)
    assert grid.origin_slot == 1
    assert grid.frame_at(0) == 1


def test_variable_grid_ends_where_the_stream_ends() -> None:
    # Frames at 0, 1, 2 and 2.5 slots; the last lasts 0.5 slot, so the stream ends at slot 3.
    index = make_index(Fraction(1, 100), [(p, p == 0) for p in (0, 4, 8, 10)])
    grid = variable_grid(index.frames(), index.time_base, FrameRate(num=25, den=1), 0, 12)
    assert grid.slots == 3


@pytest.mark.parametrize(
    ("seconds", "rate", "frames"),
    [
        (10, FrameRate(num=30000, den=1001), 300),
        (1, FrameRate(num=24, den=1), 24),
        (0.01, FrameRate(num=25, den=1), 1),
    ],
)
def test_segment_frame_count_rounds_to_whole_frames(
    seconds: float, rate: FrameRate, frames: int
) -> None:
    assert segment_frame_count(seconds, rate) == frames


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_segment_seconds_must_be_positive(seconds: float) -> None:
    with pytest.raises(BadInputError, match="segment length must be a positive number"):
        segment_frame_count(seconds, FrameRate(num=30, den=1))


def test_frame_rate_snaps_to_standard_rates() -> None:
    assert FrameRate.from_fraction(Fraction(2000, 67)).snapped() == FrameRate(num=30000, den=1001)
    assert FrameRate.from_fraction(Fraction(1530, 59)).snapped() == FrameRate(num=1530, den=59)
    assert FrameRate.parse("0/0") is None
    assert FrameRate.parse("30000/1001") == FrameRate(num=30000, den=1001)
