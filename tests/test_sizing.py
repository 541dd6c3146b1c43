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
GUIDE_SIZES = ["384*256", "688*368", "704*384", "720*400", "832*480", "480*832", "1280*720", "720*1280", "1024*704", "704*1024"]


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


def test_clip_count_follows_upstream_formula():
    # ~ floor(seconds / 1.92) + 1 for 48-frame clips
    for seconds, clips in [(1.0, 1), (1.95, 2), (10.0, 6), (60.0, 32)]:
        assert audio_clip_count(int(seconds * 16000), 48) == clips, seconds
    assert audio_clip_count(10 * 16000, 32) == int(int(((10 * 16000 - 400) // 320 + 1) / 50 * 30) / (32 * 1.2)) + 1


def test_frame_count_is_trimmed_to_audio_and_capped_by_clips():
    assert video_frame_count(10.0, 6, 48) == 250
    assert video_frame_count(10.0, 2, 48) == 96
    assert video_frame_count(10.01, 6, 48) == 251
