"""Clip headers (no decoding) and the prompt/store budget computed from them (msa.data.headers,
msa.data.budget): the media token counts equal what the collator builds from the decoded clip."""

from __future__ import annotations

from fractions import Fraction

import pytest

from data_fixtures import make_clip, processor, truncate  # noqa: F401  (fixture)
from real_clips import write_clip

from msa.data.headers import ClipHeaders, read_headers, read_many
from msa.data.media import MediaError

QWEN = {"video_min_pixels": 128 * 28 * 28, "video_max_pixels": 768 * 28 * 28}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("budget")
    return {
        "ntsc": write_clip(d / "ntsc.mp4", 3.0),  # 29.97 fps 640x360, 44.1 kHz stereo
        "pal": write_clip(d / "pal.mp4", 2.2, fps=25, width=320, height=240, audio_rate=None),
        "small": make_clip(d / "small.mp4", 2.0),  # 10 fps 64x64, 16 kHz mono
        "audio_only": make_clip(d / "audio_only.mp4", 1.5, video=False),
    }


def test_headers_read_the_stream_parameters(real):
    h = read_headers(real["ntsc"])
    assert (h.width, h.height, h.n_frames, h.rotation) == (640, 360, 90, 0)
    assert h.fps == pytest.approx(30000 / 1001) and h.duration == pytest.approx(90 * 1001 / 30000)
    assert (h.has_video, h.has_audio, h.audio_rate, h.audio_channels) == (True, True, 44100, 2)
    # 3 s at 44.1 kHz = 132300 samples, decoded as whole 1024-sample AAC frames: 130 of them
    assert h.audio_samples == 130 * 1024 == read_headers(real["ntsc"]).audio_samples
    assert read_headers(real["small"]).audio_samples == 32 * 1024  # 2 s at 16 kHz: 32000 -> 32768
    pal = read_headers(real["pal"])
    assert (pal.width, pal.height, pal.fps, pal.n_frames, pal.has_audio, pal.audio_rate) == (320, 240, 25.0, 55,
                                                                                             False, None)
    a = read_headers(real["audio_only"])
    assert (a.has_video, a.width, a.n_frames, a.has_audio, a.audio_rate) == (False, None, None, True, 16000)
    assert a.duration == pytest.approx(1.5, abs=0.1)


def test_unreadable_clips_raise_media_errors_naming_the_file(tmp_path, real):
    missing, empty = tmp_path / "missing.mp4", tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    broken = truncate(make_clip(tmp_path / "broken.mp4", 2.0))
    for path, kind in ((missing, "missing"), (empty, "empty"), (broken, "unreadable")):
        with pytest.raises(MediaError, match=path.name) as err:
            read_headers(path)
        assert err.value.kind == kind
    got = read_many([real["small"], missing])
    assert isinstance(got[str(real["small"])], ClipHeaders) and got[str(missing)].kind == "missing"


def test_token_counts_by_hand():
    from msa.data.budget import audio_tokens, fitted_max_frames, prompt_tokens, store_bytes, video_tokens

    # 10 s of 720p at 25 fps: 20 frames at 560 x 1008 (Qwen's 768*28*28 cap): 10 steps of 20 x 36 tokens.
    hd = ClipHeaders("hd.mp4", 10.0, 1280, 720, 25.0, 250, 0, True, True, 48000, 2)
    assert video_tokens(hd, {}) == 7200 and audio_tokens(hd, {}) == 250  # 1000 mel frames -> 500 -> 250
    # compact (<= 256*28*28 a frame): 720x1280 shrinks by sqrt(921600 / 200704) = 2.143 to 336 x 597,
    # floored to multiples of 28: 336 x 588 -> 12 x 21 per step
    assert video_tokens(hd, {"video_max_pixels": 256 * 28 * 28}) == 10 * 12 * 21
    assert audio_tokens(hd, {"max_audio_seconds": 4.0}) == 100
    # the store: 20 frames x 560 x 1008 x 3 bytes + 1000 mel frames x 128 x 4 bytes
    assert store_bytes(hd, {}) == 20 * 560 * 1008 * 3 + 1000 * 128 * 4
    # text off, video only: 7200 + the two vision delimiters + the text without a transcript
    only_video = {"modalities": {"text": False, "audio": False, "video": True}}
    from msa.data.budget import text_tokens

    assert prompt_tokens(hd, only_video) == 7202 + text_tokens(only_video)
    # 4000 tokens: 8 frames (4 steps, 2880) + 252 audio + text fit; 10 frames (3600) do not
    text = text_tokens({})
    assert 2880 + 252 + 2 + text <= 4000 < 3600 + 252 + 2 + text
    assert fitted_max_frames(hd, {"max_prompt_tokens": 4000}) == 8
    assert fitted_max_frames(hd, {"max_prompt_tokens": 9000}) is None
    assert fitted_max_frames(hd, {"max_prompt_tokens": 500}) == 0  # 4 frames are 1440 alone


def test_media_tokens_equal_the_collators(real, processor):
    """The budget's media count is exactly the collator's <|VIDEO|>/<|AUDIO|> tokens and delimiters."""
    from msa.data.budget import media_tokens
    from msa.data.cache import MediaCache
    from msa.data.collate import MultimodalCollator

    tok = processor.tokenizer
    counted = {tok.convert_tokens_to_ids(t) for t in ("<|VIDEO|>", "<|AUDIO|>", "<|vision_bos|>", "<|vision_eos|>",
                                                       "<|audio_bos|>", "<|audio_eos|>")}
    for pixels in (QWEN, {"video_min_pixels": 3136, "video_max_pixels": 8192}):
        cache = MediaCache(processor, None, **pixels)
        collate = MultimodalCollator(processor, modalities=("text", "audio", "video"))
        for name in ("ntsc", "small"):
            h = read_headers(real[name])
            sample = {"id": name, "dataset": "mosi", "transcript": "fine", "label": 0.0, "label_T": 0.0,
                      "label_A": 0.0, "label_V": 0.0, "video": cache.video(h.path), "audio": cache.audio(h.path),
                      "audio_missing": False}
            ids = collate([sample])["input_ids"][0].tolist()
            assert sum(i in counted for i in ids) == media_tokens(h, pixels), (name, pixels)
        video_only = {**pixels, "modalities": {"text": True, "audio": False, "video": True}}
        collate = MultimodalCollator(processor, modalities=("text", "video"))
        h = read_headers(real["pal"])
        sample = {"id": "pal", "dataset": "mosi", "transcript": "fine", "label": 0.0, "label_T": 0.0, "label_A": 0.0,
                  "label_V": 0.0, "video": cache.video(h.path), "audio": None, "audio_missing": False}
        ids = collate([sample])["input_ids"][0].tolist()
        assert sum(i in counted for i in ids) == media_tokens(h, video_only)


def test_a_capped_clip_is_sampled_at_its_real_rate(real, processor):
    """A per-clip frame cap (data.max_prompt_tokens) gives fewer frames, and the grid's seconds are the
    real ones: 3 s at 29.97 fps, 6 frames wanted, 4 kept -> 4 / 90 * 29.97 fps, 2 frames span 1.5 s."""
    from msa.data.budget import sampled_frames
    from msa.data.cache import MediaCache

    h = read_headers(real["ntsc"])
    assert sampled_frames(h, QWEN) == 6 and sampled_frames(h, QWEN, max_frames=4) == 4
    entry = MediaCache(processor, None, max_frames=4, **QWEN).video(h.path)
    assert entry["video_grid_thw"][0, 0].item() == 2
    assert entry["video_second_per_grid"] == pytest.approx(2 / (4 / 90 * 30000 / 1001))


def test_headers_are_kept_per_path_size_and_mtime(real, tmp_path, monkeypatch):
    import os

    from msa.data import headers

    clip = make_clip(tmp_path / "c.mp4", 2.0)
    store = headers.store_file(tmp_path / "media", tmp_path)
    first = read_many([clip, real["small"]], store=store)
    assert store.exists() and first[str(clip)].n_frames == 20
    headers._MEMO.clear()

    def no_open(path):
        raise AssertionError(f"{path} was opened again")

    monkeypatch.setattr(headers, "read_headers", no_open)
    assert read_many([clip, real["small"]], store=store) == first  # from the store: nothing opened
    make_clip(clip, 3.0)  # rewritten: new size and mtime
    os.utime(clip, ns=(1, 1))
    monkeypatch.undo()
    assert read_many([clip], store=store)[str(clip)].n_frames == 30
