"""MSADataModule: demo batches, splits, limits, targets, skips and their count, the registry."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from data_fixtures import make_sims_set, processor  # noqa: F401  (pytest fixture)

from msa.callbacks import SkipCounter
from msa.data.datamodule import DATAMODULES, DemoDataModule, MOSEIDataModule, MSADataModule, build_datamodule
from msa.data.media import MediaError, NoAudioError

BROKEN = {"video_0001$_$0002": "truncated", "video_0002$_$0001": "missing"}


@pytest.fixture(scope="module")
def sims_root(tmp_path_factory):
    return make_sims_set(tmp_path_factory.mktemp("sims"))


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory):
    return make_sims_set(tmp_path_factory.mktemp("sims_broken"), broken=BROKEN)


def test_setup_without_processor_is_a_clear_error(sims_root, tmp_path):
    dm = MSADataModule("sims", sims_root, cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="attach_processor"):
        dm.setup()


def test_demo_yields_batches(tmp_path, processor):
    dm = DemoDataModule(tmp_path / "demo", n_clips=12, batch_size=2, cache_dir=tmp_path / "cache", limit=3)
    dm.attach_processor(processor)
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.spec.score_min, dm.spec.score_max) == (-1.0, 1.0)
    assert len(dm.datasets["train"]) == 3  # limit
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 2 and batch["use_audio_in_video"] is True
    assert batch["video_grid_thw"].shape == (2, 3) and batch["input_features"].shape[0] == 2
    assert all(i.startswith("video_") and "$_$" in i for i in batch["ids"])
    assert batch["label"].dtype == torch.float64 and batch["skipped"] == []
    val = next(iter(dm.val_dataloader()))
    assert "labels" not in val and set(val["ids"]) <= set(dm.frames["valid"]["id"])


def test_splits_limit_and_predict_split(sims_root, processor, tmp_path):
    dm = build_datamodule(name="sims", root=sims_root, cache_dir=tmp_path, eval_batch_size=5, predict_split="test",
                          modalities={"text": True, "audio": False, "video": False})
    dm.attach_processor(processor).setup()
    # the fixture has 3 train, 2 valid, 1 test rows
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 3, "valid": 2, "test": 1}
    assert dm.cache is None  # text only: no media, no cache
    assert [b["ids"] for b in dm.predict_dataloader()] == [["video_0003$_$0002"]]
    assert [len(b["ids"]) for b in dm.val_dataloader()] == [2]
    batch = next(iter(dm.train_dataloader()))
    assert "pixel_values_videos" not in batch and "input_features" not in batch


def test_shuffle_is_seeded(sims_root, processor, tmp_path):
    def order(seed):
        dm = build_datamodule(name="sims", root=sims_root, cache_dir=tmp_path, batch_size=1, seed=seed,
                              modalities=["text"])
        dm.attach_processor(processor).setup()
        return [b["ids"][0] for b in dm.train_dataloader()]

    assert order(3) == order(3) and sorted(order(3)) == sorted(order(4))


def test_targets_restrict_train_and_add_labels(sims_root, processor, tmp_path):
    targets = {"video_0001$_$0001": "<score>0.8</score>", "video_0002$_$0001": "<score>-1.0</score>"}
    dm = build_datamodule(name="sims", root=sims_root, cache_dir=tmp_path, batch_size=4, shuffle=False, targets=targets,
                          modalities=["text"])
    dm.attach_processor(processor).setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["ids"] == list(targets) and (batch["labels"] != -100).any()
    assert "labels" not in next(iter(dm.val_dataloader()))


def test_broken_clips_raise_by_default_naming_dataset_clip_and_file(broken_root, processor, tmp_path):
    dm = build_datamodule(name="sims", root=broken_root, cache_dir=tmp_path, batch_size=3, shuffle=False)
    dm.attach_processor(processor).setup()
    with pytest.raises(MediaError) as err:
        next(iter(dm.train_dataloader()))
    msg = str(err.value)
    assert msg.startswith("sims: clip video_0001$_$0002 (") and "0002.mp4" in msg and "truncated" in msg


def test_skips_are_counted_by_the_callback(broken_root, processor, tmp_path):
    dm = build_datamodule(name="sims", root=broken_root, cache_dir=tmp_path, batch_size=3, shuffle=False,
                          on_error="skip")
    dm.attach_processor(processor)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[str] = []

        def training_step(self, batch, batch_idx):
            self.seen += batch["ids"]
            return (self.w - 1).pow(2).sum()

        def validation_step(self, batch, batch_idx):
            self.seen += batch["ids"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    module, counter = Module(), SkipCounter()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[counter], num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    # train rows: 0001/0001 fine, 0001/0002 truncated, 0002/0001 missing -> 1 kept, 2 skipped;
    # the 2 valid rows are fine
    assert module.seen == ["video_0001$_$0001", "video_0002$_$0002", "video_0003$_$0001"]
    assert trainer.callback_metrics["data/skipped"].item() == 2.0
    assert trainer.callback_metrics["data/skipped_val"].item() == 0.0
    assert dm.skip_report.total("train") == 2
    assert dict(dm.skip_report.counts) == {("train", "unreadable"): 1, ("train", "missing"): 1}


def test_missing_audio_track(tmp_path, processor):
    root = make_sims_set(tmp_path / "sims", broken={"video_0003$_$0002": "no_audio"})
    dm = build_datamodule(name="sims", root=root, cache_dir=tmp_path / "c", modalities=["text", "audio", "video"])
    dm.attach_processor(processor).setup()
    with pytest.raises(NoAudioError, match="sims: clip video_0003\\$_\\$0002 .*no audio track"):
        next(iter(dm.test_dataloader()))
    dm = build_datamodule(name="sims", root=root, cache_dir=tmp_path / "c", allow_missing_audio=True)
    dm.attach_processor(processor).setup()
    batch = next(iter(dm.test_dataloader()))
    assert batch["ids"] == ["video_0003$_$0002"] and batch["use_audio_in_video"] is False
    assert "input_features" not in batch and batch["pixel_values_videos"].shape[0] > 0


def test_registry_and_bad_arguments(sims_root):
    assert set(DATAMODULES) == {"sims", "simsv2", "mosi", "mosei", "demo", "demo_mosi", "hard", "hard_mosi", "study"}
    dm = build_datamodule(name="mosei", root=sims_root)
    assert isinstance(dm, MOSEIDataModule) and (dm.spec.score_min, dm.spec.score_max) == (-3.0, 3.0)
    with pytest.raises(ValueError, match="no data module for 'iemocap'"):
        build_datamodule(name="iemocap", root=sims_root)
    with pytest.raises(ValueError, match="give the dataset directory"):
        build_datamodule(name="sims")
    with pytest.raises(ValueError, match="on_error"):
        build_datamodule(name="sims", root=sims_root, on_error="ignore")
    with pytest.raises(ValueError, match="unknown modalities"):
        build_datamodule(name="sims", root=sims_root, modalities=["smell"])


def test_build_datamodule_from_a_data_node(sims_root, tmp_path):
    """The stages' builder: a conf/data node plus overrides; eval_datasets and the generation keys of a
    synthetic set do not reach a real dataset; another dataset comes with its own root."""
    from omegaconf import OmegaConf

    sentinel = object()  # any processor: attached as given
    node = OmegaConf.create({"name": "demo", "root": str(tmp_path / "demo"), "n_clips": 12, "batch_size": 3,
                             "eval_datasets": ["demo", "demo_mosi"], "cache_dir": str(tmp_path / "c")})
    dm = build_datamodule(node, processor=sentinel, use_audio_in_video=False, name="sims", root=sims_root,
                          answer="score")
    assert type(dm).__name__ == "SIMSDataModule" and dm.root == sims_root and dm.batch_size == 3
    assert dm.processor is sentinel and dm.use_audio_in_video is False and dm.answer == "score"
    demo = build_datamodule(node, root=tmp_path / "elsewhere")  # root alone moves the node's dataset
    assert isinstance(demo, DemoDataModule) and demo.n_clips == 12 and demo.root == tmp_path / "elsewhere"
    assert demo.processor is None and demo.use_audio_in_video is True
    # The same dataset named again keeps the node's root.
    assert build_datamodule(node, name="demo").root == tmp_path / "demo"


class _IdsModule(L.LightningModule):
    """Records each training batch's ids and stops after ``stop_at`` steps; like SFT, it asks for the
    step count in configure_optimizers, which builds the train loader before a checkpoint is restored."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.w, self.ids, self.stop_at = torch.nn.Parameter(torch.zeros(1)), [], stop_at

    def training_step(self, batch, batch_idx):
        self.ids.append(tuple(batch["ids"]))
        return ((self.w - 1) ** 2).sum()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.stop_at is not None and self.global_step >= self.stop_at:
            self.trainer.should_stop = True

    def configure_optimizers(self):
        assert self.trainer.estimated_stepping_batches == 6
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_when_the_step_count_built_the_loader_early(sims_root, processor, tmp_path, workers):
    """3 batches an epoch, 2 epochs; stopped after step 4 (epoch 1, one batch in) and resumed: the rest of
    epoch 1 in its order (before the fix, epoch 1 started over: its first batch twice, its last never)."""
    def fit(ckpt_dir, stop_at=None, ckpt_path=None):
        dm = build_datamodule(name="sims", root=sims_root, cache_dir=tmp_path, batch_size=1, seed=1,
                              modalities=["text"], num_workers=workers)
        dm.attach_processor(processor)
        module = _IdsModule(stop_at)
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=1)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, accelerator="cpu", callbacks=[ckpt])
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        return module.ids, module.w.detach().clone()

    ids_full, w_full = fit(tmp_path / "full")
    assert len(ids_full) == 6 and ids_full[3:] != ids_full[:3]
    ids_a, _ = fit(tmp_path / "cut", stop_at=4)
    assert len(ids_a) == 4
    ids_b, w_resumed = fit(tmp_path / "cut", ckpt_path=str(tmp_path / "cut" / "last.ckpt"))
    assert ids_a + ids_b == ids_full
    assert torch.equal(w_resumed, w_full)


def test_workers_load_the_same_batches(tmp_path, processor):
    def batches(workers):
        dm = DemoDataModule(tmp_path / "demo", n_clips=12, batch_size=2, cache_dir=tmp_path / "cache", limit=5,
                            num_workers=workers)
        dm.attach_processor(processor)
        dm.prepare_data()
        return list(dm.train_dataloader())

    plain, workers = batches(0), batches(2)
    assert [b["ids"] for b in plain] == [b["ids"] for b in workers]
    for a, b in zip(plain, workers):
        for k in a:
            if isinstance(a[k], torch.Tensor):  # exact, NaN where a value is unknown (the demo has no conflict column)
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, equal_nan=True, msg=k)


def test_length_buckets_batch_similar_prompts(sims_root, processor, tmp_path):
    dm = build_datamodule(name="sims", root=sims_root, cache_dir=tmp_path, batch_size=2, shuffle=False,
                          modalities=["text"], bucket_by_length=True)
    dm.attach_processor(processor).setup()
    dm._lengths["train"] = [30, 10, 20]  # as msa.data.budget would count them
    ids = list(dm.frames["train"]["id"])
    assert [b["ids"] for b in dm.train_dataloader()] == [[ids[1], ids[2]], [ids[0]]]


def test_prompt_lengths_come_from_the_headers_and_the_budget(broken_root, processor, tmp_path):
    from msa.data.budget import prompt_tokens
    from msa.data.headers import read_headers

    dm = build_datamodule(name="sims", root=broken_root, cache_dir=tmp_path, on_error="skip", bucket_by_length=True)
    dm.attach_processor(processor).setup()
    frame, settings = dm.frames["train"], dm.budget_settings()
    first = prompt_tokens(read_headers(frame["path"][0]), settings, transcript=frame["text"][0])
    # 2 s of audio and video; the second clip is truncated and the third missing: no headers, they count 0
    assert dm.prompt_lengths("train") == [first, 0, 0] and first > 100
    with pytest.raises(MediaError, match="file not found"):
        read_headers(frame["path"][2])
    strict = build_datamodule(name="sims", root=broken_root, cache_dir=tmp_path, bucket_by_length=True)
    strict.attach_processor(processor).setup()
    with pytest.raises(MediaError, match="video_0001/0002.mp4"):
        strict.train_dataloader()
