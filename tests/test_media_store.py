"""The media store: uint8 frames on disk, the processor's tensors on load; modes, size bound, upkeep,
error records, unreadable paths, rotated clips.

The real-format clips (``tests/real_clips.py``) are short (4 sampled frames) so the default suite
stays quick; the longer ones are ``slow``.
"""

from __future__ import annotations

import builtins
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from data_fixtures import clips, make_sims_set, processor  # noqa: F401  (pytest fixtures)
from real_clips import write_clip

from msa.data import media
from msa.data.cache import MediaCache, main, store_bytes
from msa.data.dataset import MSADataset, SkippedSample
from msa.data.media import MediaError
from msa.data.store import Store, read_entry

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("store_clips")
    return {
        # 36 frames (1.2 s) at 29.97 fps -> 4 sampled frames; 720p -> 560x1008 under Qwen's budget
        "720p": write_clip(d / "720p.mp4", 1.2, width=1280, height=720),
        "1080p": write_clip(d / "1080p.mp4", 1.0, fps=25, width=1920, height=1080, audio_rate=48000),
        "odd": write_clip(d / "odd.mp4", 1.5, fps=30, width=642, height=362),  # 642x362 -> resized to a 28 grid
    }


def processor_output(cache: MediaCache, path) -> dict:
    """What the processor computes from the clip's frames (decoded, resized as qwen-omni-utils does)."""
    frames, info = media.sample_video(path)
    frames = media.resize_frames(frames, *cache.frame_size(*frames.shape[1:3], frames.shape[0]))
    fps = media.sampled_fps(info.total_frames, info.fps, frames.shape[0])
    kwargs = dict(cache._merged, videos_kwargs=dict(cache._merged["videos_kwargs"], fps=fps))
    out, _ = cache.processor._process_videos([frames], **kwargs)
    return out


# -- the store holds uint8 frames; loads give the processor's tensors bit for bit ----------------------

@pytest.mark.parametrize("name", ["720p", "1080p", "odd"])
def test_cold_and_warm_loads_are_the_processors_tensors(real, processor, tmp_path, name):
    ref = processor_output(MediaCache(processor, None), real[name])
    cold = MediaCache(processor, tmp_path).video(real[name])
    warm_cache = MediaCache(processor, tmp_path)
    warm = warm_cache.video(real[name])
    assert warm_cache.stats == {"video/hit": 1}
    for out in (cold, warm):
        assert out["pixel_values_videos"].dtype == torch.float32
        assert torch.equal(out["pixel_values_videos"], ref["pixel_values_videos"])
        assert torch.equal(out["video_grid_thw"], ref["video_grid_thw"])
        assert out["video_second_per_grid"] == float(ref["video_second_per_grid"][0])
    entry = read_entry(next((tmp_path / "video").rglob("*.pt")))
    t, h, w = ref["video_grid_thw"][0].tolist()
    # the resized frames' bytes, in the processor's patch order: 2 frames x 3 channels x 14 x 14 a patch
    assert entry["patches"].dtype == torch.uint8 and entry["patches"].shape == (t * h * w, 3 * 2 * 14 * 14)
    assert entry["grid"] == [t, h, w]


def test_720p_grid_and_bytes_per_video_token_by_hand(real, processor, tmp_path):
    cache = MediaCache(processor, tmp_path)
    v, a = cache.video(real["720p"]), cache.audio(real["720p"])
    # 1280x720 over 768*28*28 pixels: scaled by sqrt(1280*720/602112) = 1.2367 -> 560x1008: 40x72 patches
    assert v["video_grid_thw"].tolist() == [[2, 40, 72]]
    video_file = next((tmp_path / "video").rglob("*.pt"))
    audio_file = next((tmp_path / "audio").rglob("*.pt"))
    tokens = 2 * 40 * 72 // 4  # 1,440 merged patches
    # 4 frames x 560 x 1008 x 3 bytes = 6,773,760 = 4,704 bytes a token, plus the entry's header and layout
    assert video_file.stat().st_size / tokens <= 4800
    assert abs(store_bytes([2, 40, 72]) - video_file.stat().st_size) <= 64
    assert abs(store_bytes(None, a["seconds"]) - audio_file.stat().st_size) <= 64
    assert store_bytes([2, 40, 72], a["seconds"]) == store_bytes([2, 40, 72]) + store_bytes(None, a["seconds"])


@pytest.mark.slow
def test_longer_real_format_clips_are_the_processors_tensors(processor, tmp_path):
    clip = write_clip(tmp_path / "long1080.mp4", 6.0, fps=NTSC, width=1920, height=1080, audio_rate=48000)
    ref = processor_output(MediaCache(processor, None), clip)
    MediaCache(processor, tmp_path / "s").video(clip)
    warm = MediaCache(processor, tmp_path / "s").video(clip)
    assert warm["video_grid_thw"].tolist() == [[6, 40, 72]]  # 12 frames
    assert torch.equal(warm["pixel_values_videos"], ref["pixel_values_videos"])


# -- modes and per-call frame settings -----------------------------------------------------------------

def test_audio_mode_keeps_audio_only(clips, processor, tmp_path):
    cache = MediaCache(processor, tmp_path, mode="audio")
    first = cache.video(clips["a"])
    cache.audio(clips["a"])
    again = cache.video(clips["a"])
    assert torch.equal(first["pixel_values_videos"], again["pixel_values_videos"])
    assert cache.stats == {"video/decode": 2, "audio/miss": 1}
    assert not (tmp_path / "video").exists() and len(list((tmp_path / "audio").rglob("*.pt"))) == 1


def test_none_mode_keeps_nothing_and_hashes_nothing(clips, processor, tmp_path, monkeypatch):
    cache = MediaCache(processor, tmp_path, mode="none")
    monkeypatch.setattr(cache, "content_hash", lambda p: pytest.fail("none mode hashed the clip"))
    cache.video(clips["a"])
    cache.audio(clips["a"])
    assert cache.stats == {"video/decode": 1, "audio/decode": 1}
    assert not any(tmp_path.iterdir())


def test_bad_mode_and_bound_are_named(processor):
    with pytest.raises(ValueError, match="cache mode"):
        MediaCache(processor, None, mode="some")
    with pytest.raises(ValueError, match="cache_max_gb"):
        MediaCache(processor, None, max_gb=0)


def test_max_frames_per_call_has_its_own_entry(clips, processor, tmp_path):
    cache = MediaCache(processor, tmp_path)
    # 2 s at 10 fps: 4 frames by default; max_frames=2 keeps 2 (indices 0 and 19): one grid of 2 s
    assert cache.video(clips["a"])["video_grid_thw"][0, 0].item() == 2
    capped = cache.video(clips["a"], max_frames=2, min_frames=2)
    assert capped["video_grid_thw"][0, 0].item() == 1
    assert capped["video_second_per_grid"] == pytest.approx(2 / (2 / 20 * 10))  # sampled at 1 fps: 2 s a grid
    assert len(list((tmp_path / "video").rglob("*.pt"))) == 2
    assert cache.video(clips["a"], max_frames=2, min_frames=2)["video_grid_thw"][0, 0].item() == 1
    assert cache.stats["video/hit"] == 1


# -- the size bound: least recently used entries go first ---------------------------------------------

def test_size_bound_drops_least_recently_used_first(tmp_path):
    store = Store(tmp_path, max_bytes=2500)
    blob = {"x": torch.zeros(900, dtype=torch.uint8)}  # 900 bytes + header and layout: about 1.1 KB an entry
    a, b, c = (store.path("audio", k * 64) for k in "abc")
    store.write(a, blob)
    store.write(b, blob)
    size = a.stat().st_size
    assert 2 * size <= 2500 < 3 * size
    os.utime(a, ns=(10**18, 10**18))  # a used long ago ...
    os.utime(b, ns=(15 * 10**17, 15 * 10**17))  # ... b later (2001, 2017)
    store.read(a)  # ... and a again now: b is now the least recently used
    store.write(c, blob)  # 3 entries > 2,500 bytes: prune to 2,250 -> drop b only
    assert a.exists() and not b.exists() and c.exists()
    assert store.pruned == 1


def test_cli_stats_prune_verify(clips, processor, tmp_path, capsys):
    cache = MediaCache(processor, tmp_path)
    cache.video(clips["a"])
    cache.audio(clips["a"])
    assert main(["stats", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the demo clip: 4 frames of 336x336 -> 2 x 24 x 24 patches = 288 video tokens
    assert "video: 1 entries (0 error records, 0 stale)" in out and "288 video tokens" in out
    assert main(["verify", str(tmp_path)]) == 0
    entry = next((tmp_path / "audio").rglob("*.pt"))
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert main(["verify", str(tmp_path)]) == 1
    assert f"corrupt: {entry}" in capsys.readouterr().out
    assert main(["verify", str(tmp_path), "--delete"]) == 0 and not entry.exists()
    assert main(["prune", str(tmp_path), "--max-gb", "0"]) == 0
    assert "deleted 1 entries" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.pt"))


# -- error records name the clip they are read for ------------------------------------------------------

def test_error_record_names_the_path_it_is_read_under(clips, processor, tmp_path):
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    shutil.copy(clips["truncated"], first)
    shutil.copy(clips["truncated"], second)  # same bytes: same key, one record
    with pytest.raises(MediaError) as err:
        MediaCache(processor, tmp_path / "s").video(first)
    assert str(first) in str(err.value)
    warm = MediaCache(processor, tmp_path / "s")
    with pytest.raises(MediaError) as err:
        warm.video(second)
    assert warm.stats == {"video/error_hit": 1}
    assert str(second) in err.value.reason and "first.mp4" not in str(err.value)


# -- unreadable paths are clip errors (data.on_error=skip covers them) ---------------------------------

def _dataset(path, cache, on_error="skip"):
    frame = pd.DataFrame([{"id": "v1$_$0001", "text": "hi", "label": 0.5, "path": str(path)}])
    return MSADataset(frame, "sims", cache, modalities=["text", "video"], on_error=on_error)


def test_a_directory_at_the_clip_path_is_skipped_with_its_name(processor, tmp_path):
    clip = tmp_path / "Raw" / "v1" / "0001.mp4"
    clip.mkdir(parents=True)
    for cache in (MediaCache(processor, tmp_path / "s"), MediaCache(processor, None)):
        skipped = _dataset(clip, cache)[0]
        assert isinstance(skipped, SkippedSample) and skipped.kind == "missing"
        assert "sims: clip v1$_$0001" in skipped.reason and "a directory" in skipped.reason
        with pytest.raises(MediaError, match=r"sims: clip v1\$_\$0001 .*a directory"):
            _dataset(clip, cache, on_error="raise")[0]


def test_an_unreadable_file_is_skipped_with_its_name(clips, processor, tmp_path):
    clip = tmp_path / "0001.mp4"
    shutil.copy(clips["a"], clip)
    clip.chmod(0)
    try:
        if os.access(clip, os.R_OK):  # root reads a mode-000 file
            pytest.skip("running as root: permissions do not stop reads (see the monkeypatched test)")
        skipped = _dataset(clip, MediaCache(processor, tmp_path / "s"))[0]
        assert isinstance(skipped, SkippedSample) and skipped.kind == "unreadable"
        assert "sims: clip v1$_$0001" in skipped.reason and "ermission denied" in skipped.reason
    finally:
        clip.chmod(0o644)


def test_a_read_refused_while_hashing_is_skipped_with_its_name(clips, processor, tmp_path, monkeypatch):
    clip = tmp_path / "0001.mp4"
    shutil.copy(clips["a"], clip)
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if Path(file) == clip:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    skipped = _dataset(clip, MediaCache(processor, tmp_path / "s"))[0]
    assert isinstance(skipped, SkippedSample) and skipped.kind == "unreadable"
    assert "sims: clip v1$_$0001" in skipped.reason and "Permission denied" in skipped.reason
    assert str(clip) in skipped.reason


# -- rotated phone video -------------------------------------------------------------------------------

def _raw_frames(path) -> list[np.ndarray]:
    """Every frame as stored, the display matrix ignored, ``[H, W, 3]``."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize("rotation, k", [(-90, -1), (90, 1), (180, 2)])
def test_rotated_clip_is_decoded_upright(tmp_path, processor, rotation, k):
    clip = write_clip(tmp_path / "phone.mp4", 2.0, fps=10, width=224, height=112, audio_rate=None,
                      rotation=rotation)
    raw = _raw_frames(clip)
    assert raw[0].shape == (112, 224, 3)
    frames = media.decode_video(clip)  # 20 frames -> indices 0, 6, 13, 19
    expected = np.stack([np.rot90(raw[i], k) for i in (0, 6, 13, 19)])
    assert np.array_equal(frames, expected)
    grid = MediaCache(processor, None).video(clip)["video_grid_thw"][0].tolist()
    # upright 112 wide x 224 tall (a quarter turn) is enlarged to Qwen's minimum with its aspect kept
    assert (grid[1] > grid[2]) == (abs(rotation) == 90)


# -- configuration: data.cache and paths.cache_max_gb reach the store, bad values fail first ------------

def test_cache_keys_reach_the_store_and_bad_values_fail_early(make_cfg, processor, tmp_path):
    from msa.config import ConfigError, validate
    from msa.data.datamodule import build_datamodule

    cfg = make_cfg("data.cache=audio", "paths.cache_max_gb=2.5")
    validate(cfg)
    dm = build_datamodule(cfg.data, processor=processor, name="sims", root=make_sims_set(tmp_path / "sims"))
    dm.setup()  # builds the store's MediaCache; nothing is decoded yet
    assert dm.cache.mode == "audio" and dm.cache.stored == ("audio",)
    assert dm.cache.store.max_bytes == 2_500_000_000
    for key, value, match in [("data.cache", "some", r"^data.cache: 'some' is not one of all, audio, none"),
                              ("paths.cache_max_gb", 0, r"^paths.cache_max_gb: must be a positive")]:
        bad = cfg.copy()
        OmegaConf.update(bad, key, value)
        with pytest.raises(ConfigError, match=match):
            validate(bad)


def test_a_processor_without_fused_normalise_gets_frames_and_its_own_path(clips, processor, tmp_path):
    import copy

    plain = copy.deepcopy(processor)
    plain.video_processor.do_normalize = False  # rescale only: the shortcut does not apply
    ref = processor_output(MediaCache(plain, None), clips["a"])
    MediaCache(plain, tmp_path).video(clips["a"])
    entry = read_entry(next((tmp_path / "video").rglob("*.pt")))
    assert "frames" in entry and "patches" not in entry and entry["frames"].dtype == torch.uint8
    warm = MediaCache(plain, tmp_path).video(clips["a"])
    assert torch.equal(warm["pixel_values_videos"], ref["pixel_values_videos"])
