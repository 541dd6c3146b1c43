import pytest

from liveavatar.errors import UserError
from liveavatar.sizing import audio_clip_count, output_size, parse_size, video_frame_count

# (image H, W) -> {size string: expected (H, W)}, from upstream's rule as evaluated in
# upstream-facts.md §1.1 (independent of this code).
UPSTREAM_TABLE = {
    (720, 1280): {"720*400": (384, 704), "704*384": (384, 704), "688*368": (384, 640), "832*480": (448, 832)},
    (1080, 1920): {"720*400": (384, 704), "704*384": (384, 704), "688*368": (384, 640), "832*480": (448, 832)},
    (576, 1024): {"720*400": (384, 704), "704*384": (384, 704), "688*368": (384, 640), "832*480": (448, 832)},
    (1280, 720): {"720*400": (704, 384), "704*384": (704, 384)},
    (1920, 1080): {"720*400": (704, 384), "704*384": (704, 384)},
    (1024, 1024): {"720*400": (512, 512)},
    (768, 512): {"720*400": (640, 448), "704*384": (576, 384)},
}
GUIDE_SIZES = [
    "384*256",
    "688*368",
    "704*384",
    "720*400",
    "832*480",
    "480*832",
    "1280*720",
    "720*1280",
    "1024*704",
    "704*1024",
]


@pytest.mark.parametrize("image_hw,expected", [(k, v) for k, v in UPSTREAM_TABLE.items()])
def test_output_size_matches_upstream_table(image_hw, expected):
    for size, hw in expected.items():
        w, h = parse_size(size)
        assert output_size(*image_hw, w * h) == hw, (image_hw, size)


@pytest.mark.parametrize("size", GUIDE_SIZES)
@pytest.mark.parametrize("image_hw", [(1080, 1920), (1920, 1080), (1024, 1024), (600, 800), (333, 500)])
def test_output_size_rules(size, image_hw):
    w, h = parse_size(size)
    out_h, out_w = output_size(*image_hw, w * h)
    assert out_h % 64 == 0 and out_w % 64 == 0 and out_h > 0 and out_w > 0
    assert out_h * out_w <= max(w * h, 64 * 64)
    # never scaled up beyond the 64-padding of the portrait itself
    assert out_h < image_hw[0] + 64 and out_w < image_hw[1] + 64
    # the aspect ratio follows the portrait's (within the 64-pixel grid)
    assert abs(out_h / out_w - image_hw[0] / image_hw[1]) < 0.35


@pytest.mark.parametrize("text", ["abc", "0*0", "-5*10", "10", "5*5*5", "*", "704*", "1.5*2"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(UserError) as err:
        parse_size(text)
    assert err.value.input == "--size"


def test_parse_size_accepts_both_separators():
    assert parse_size("704*384") == (704, 384)
    assert parse_size("704x384") == (704, 384)


# (16 kHz samples, frames per clip) -> clips, worked by hand from upstream-facts.md §1.2:
# N50 = (samples - 400) // 320 + 1 wav2vec2 frames, N30 = int(N50 * 0.6), clips = int(N30 / (1.2 F)) + 1
CLIP_COUNTS = [
    (16_000, 48, 1),  # N50 49, N30 29, 29 / 57.6 -> 0, + 1
    (31_119, 48, 1),  # N50 96, N30 57 (57.6 truncated): still one clip
    (31_120, 48, 2),  # N50 97, N30 58 >= 57.6: the second clip starts one sample later
    (160_000, 48, 6),  # 10 s: N50 499, N30 299, 299 / 57.6 = 5.19
    (160_000, 32, 8),  # 10 s: 299 / 38.4 = 7.79
    (960_000, 48, 32),  # 60 s: N50 2999, N30 1799, 1799 / 57.6 = 31.23
    (399, 48, 1),  # shorter than one wav2vec2 window: no frames, still the one clip
]


@pytest.mark.parametrize("samples,frames,clips", CLIP_COUNTS)
def test_clip_count_follows_upstream(samples, frames, clips):
    assert audio_clip_count(samples, frames) == clips
    # the same audio at 48 kHz counts the same
    assert audio_clip_count(samples * 3, frames, sample_rate=48_000) == clips


def test_frame_count_is_trimmed_to_audio_and_capped_by_clips():
    assert video_frame_count(10.0, 6, 48) == 250
    assert video_frame_count(10.0, 2, 48) == 96
    assert video_frame_count(10.01, 6, 48) == 251
