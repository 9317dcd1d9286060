"""Tile grid, windows, the streaming tiled driver (tiled == untiled), resume, and the seam metric."""
import numpy as np
import pytest

from flowrt.io.array_stream import ArraySink, ArraySource, NpySink
from flowrt.errors import FlowrtError, InputError
from flowrt.tiling.grid import TileGrid, axis_spans, restore_tiled, seam_score, window_1d


@pytest.mark.parametrize("tile,overlap,align", [(32, 8, 8), (64, 16, 16), (24, 0, 8), (16, 8, 8)])
def test_axis_spans_cover_aligned_and_overlap(tile, overlap, align):
    for length in list(range(1, 140)) + [1000, 1023]:
        spans = axis_spans(length, tile, overlap, align)
        assert spans[0][0] == 0 and spans[-1][1] == length
        for start, end in spans:
            assert start % align == 0 and 0 < end - start <= tile
            assert end - start == tile or end == length  # clipped only by the image edge
        for (s0, e0), (s1, _) in zip(spans, spans[1:]):
            assert s1 > s0 and e0 - s1 >= overlap


def test_window_ramps_sum_to_one_and_never_vanish():
    first, second = window_1d(40, 0, 12), window_1d(40, 12, 0)
    assert first[0] == 1 and second[-1] == 1  # flat at image borders
    np.testing.assert_allclose(first[28:] + second[:12], 1, atol=1e-6)
    assert (first > 0).all() and (second > 0).all() and (first <= 1).all()


@pytest.mark.parametrize("height,width,channels,scale", [
    (67, 93, 3, 1), (37, 53, 1, 1), (13, 9, 3, 1), (64, 96, 3, 1), (45, 71, 3, 2), (8, 8, 2, 2)])
def test_tiled_pointwise_equals_untiled(height, width, channels, scale):
    rng = np.random.default_rng(height * width)
    image = rng.random((height, width, channels), dtype=np.float32)

    def restore(tile, box):  # pointwise, then nearest upsampling: tiling must change nothing
        return np.sqrt(tile).repeat(scale, 0).repeat(scale, 1)

    sink = ArraySink((height * scale, width * scale, channels))
    restore_tiled(ArraySource(image), sink, restore, tile=24 * scale, overlap=8 * scale,
                  scale=scale, align=8 * scale)
    np.testing.assert_allclose(sink.pixels, restore(image, None), atol=2e-6)


def test_restore_tile_may_write_into_its_input():
    image = np.random.default_rng(4).random((40, 50, 3), dtype=np.float32)
    original = image.copy()

    def in_place(tile, box):
        np.sqrt(tile, out=tile)
        return tile

    sink = ArraySink(image.shape)
    restore_tiled(ArraySource(image), sink, in_place, tile=16, overlap=8)
    np.testing.assert_array_equal(image, original)
    np.testing.assert_allclose(sink.pixels, np.sqrt(original), atol=2e-6)


def test_three_tiles_over_one_pixel_still_blend_exactly():
    rows = axis_spans(33, 24, 12, 8)  # aligned starts 0, 8, 16: the first and third overlap
    assert rows[2][0] < rows[0][1]
    image = np.random.default_rng(1).random((33, 81, 3), dtype=np.float32)
    sink = ArraySink(image.shape)
    restore_tiled(ArraySource(image), sink, lambda t, b: t * t, tile=24, overlap=12)
    np.testing.assert_allclose(sink.pixels, image * image, atol=2e-6)


def _box_blur(tile, box=None):
    padded = np.pad(tile, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = tile.shape[:2]
    return sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9


def test_tiled_local_filter_close_to_untiled_and_exact_off_overlaps():
    rng = np.random.default_rng(5)
    image = rng.random((83, 101, 3), dtype=np.float32)
    sink = ArraySink(image.shape)
    restore_tiled(ArraySource(image), sink, _box_blur, tile=32, overlap=16, align=8)
    error = np.abs(sink.pixels - _box_blur(image))
    # A 3x3 filter is wrong only on a tile's outermost pixel, where the window weighs < 0.01.
    assert error.max() < 0.01 and error.mean() < 1e-3
    grid = TileGrid.plan(83, 101, tile=32, overlap=16, align=8)
    single_row = np.ones(83, bool)
    for (_, e0), (s1, _) in zip(grid.rows, grid.rows[1:]):
        single_row[s1:e0] = False
    single_col = np.ones(101, bool)
    for (_, e0), (s1, _) in zip(grid.cols, grid.cols[1:]):
        single_col[s1:e0] = False
    assert error[np.ix_(single_row, single_col)].max() < 1e-6


def test_progress_and_bad_tiles():
    image = np.zeros((40, 40, 3), np.float32)
    seen = []
    restore_tiled(ArraySource(image), ArraySink(image.shape), lambda t, b: t, tile=16, overlap=4,
                  progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 16) for k in range(0, 17)]  # 4 x 4 tiles, after a first call with none done
    with pytest.raises(ValueError, match="restore_tile returned"):
        restore_tiled(ArraySource(image), ArraySink(image.shape), lambda t, b: t[:-1], tile=16,
                      overlap=4)
    with pytest.raises(FlowrtError, match="non-finite"):
        restore_tiled(ArraySource(image), ArraySink(image.shape), lambda t, b: t * np.nan, tile=16,
                      overlap=4)


@pytest.mark.parametrize("kwargs", [dict(tile=20), dict(tile=16, overlap=9), dict(scale=3, align=8)])
def test_bad_options_are_input_errors(kwargs):
    options = dict(tile=16, overlap=4, scale=1, align=8) | kwargs
    with pytest.raises(InputError):
        TileGrid.plan(50, 50, **options)


class _Interrupt(Exception):
    pass


def _counting(fail_at=None):
    calls = []

    def restore(tile, box):
        if len(calls) == fail_at:
            raise _Interrupt
        calls.append(box)
        return _box_blur(tile)
    return restore, calls


@pytest.mark.parametrize("fail_at", [2, 5, 12])  # mid 1st band, start of 2nd, mid 3rd
def test_resume_equals_uninterrupted(tmp_path, fail_at):
    rng = np.random.default_rng(11)
    image = (rng.random((61, 75, 3)) * 255).astype(np.uint8)  # 4 x 5 tiles
    reference = ArraySink(image.shape, np.uint8)
    restore_tiled(ArraySource(image), reference, _box_blur, tile=24, overlap=8)
    state, partial = tmp_path / "state", tmp_path / "out.npy"
    restore, calls = _counting(fail_at)
    with NpySink(partial, image.shape, np.uint8) as sink, pytest.raises(_Interrupt):
        restore_tiled(ArraySource(image), sink, restore, tile=24, overlap=8, state_path=state)
    restore, calls = _counting()
    with NpySink(partial, image.shape, np.uint8, reopen=True) as sink:
        restore_tiled(ArraySource(image), sink, restore, tile=24, overlap=8, state_path=state)
        np.testing.assert_array_equal(sink.load(), reference.pixels)
    assert len(calls) == 20 - fail_at  # finished tiles were neither lost nor redone


@pytest.mark.parametrize("fail_at", [2, 5, 12])
def test_a_resumed_runs_progress_starts_from_what_the_earlier_run_left(tmp_path, fail_at):
    """Its first call says how many tiles are already done (finished bands and cached tiles of the
    band in progress, replayed without work); then one call per tile this run restores, so a rate
    or ETA counts only this run's work."""
    image = np.zeros((61, 75, 3), np.uint8)  # 4 x 5 tiles
    state, partial = tmp_path / "state", tmp_path / "out.npy"
    restore, _ = _counting(fail_at)
    with NpySink(partial, image.shape, np.uint8) as sink, pytest.raises(_Interrupt):
        restore_tiled(ArraySource(image), sink, restore, tile=24, overlap=8, state_path=state)
    seen = []
    restore, calls = _counting()
    with NpySink(partial, image.shape, np.uint8, reopen=True) as sink:
        restore_tiled(ArraySource(image), sink, restore, tile=24, overlap=8, state_path=state,
                      progress=lambda done, total: seen.append((done, len(calls))))
    assert seen == [(fail_at + k, k) for k in range(0, 21 - fail_at)]


def test_resume_refuses_other_runs(tmp_path):
    image = np.zeros((30, 30, 3), np.float32)
    state = tmp_path / "state"
    restore_tiled(ArraySource(image), ArraySink(image.shape), lambda t, b: t, tile=16, overlap=4,
                  state_path=state, run_key="sigma=25")
    with pytest.raises(InputError, match="other options"):
        restore_tiled(ArraySource(image), ArraySink(image.shape), lambda t, b: t, tile=16,
                      overlap=4, state_path=state, run_key="sigma=10")


def test_seam_score_sees_seams_and_not_their_absence():
    rng = np.random.default_rng(2)
    image = 0.5 + 0.02 * rng.standard_normal((101, 96, 3)).astype(np.float32)  # fine texture

    def biased(tile, box):  # each tile a different brightness: a seam at every border
        return tile + 0.3 * np.random.default_rng(box[0] * 1000 + box[2]).random()

    seamless, seamy = ArraySink(image.shape), ArraySink(image.shape)
    restore_tiled(ArraySource(image), seamless, lambda t, b: t, tile=32, overlap=8)
    restore_tiled(ArraySource(image), seamy, biased, tile=32, overlap=8)
    assert seam_score(seamless.pixels, 32, 8) == pytest.approx(1, abs=0.1)
    assert seam_score(seamy.pixels, 32, 8) > 2  # 0.15 mean offsets, softened over 8+ pixels
    hard = ArraySink(image.shape)
    restore_tiled(ArraySource(image), hard, biased, tile=32, overlap=0)  # no blending at all
    assert seam_score(hard.pixels, 32, 0) > 10
    assert seam_score(image[:20, :20], 32, 8) == 1.0  # a single tile has no borders
    relative = seam_score(seamy.pixels, 32, 8, reference=seamless.pixels)
    assert relative == pytest.approx(seam_score(seamy.pixels, 32, 8) / seam_score(seamless.pixels, 32, 8))
