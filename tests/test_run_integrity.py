"""Nothing silently wrong after a crash, a resume or a stale input: one ``last.ckpt`` that is always the
newest state, a validation interrupted by a crash that runs again after the resume, ``checkpoints/best``
that only ever holds the best validated epoch (also after a resume into a new run directory), run
directories that two launches never share, skipped eval clips counted, and config holes that fail
naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

# SFT on 4 clips, one per batch: 4 optimizer steps an epoch, a validation after each epoch.
SFT = ["stage=sft", "sft.answer=score", "experiment=none", "model=tiny", "data.limit=4", "data.n_clips=24",
       "data.batch_size=1", "eval.datasets=[demo]", "eval.max_new_tokens=4", "sft.val_max_new_tokens=4",
       "sft.val_every_n_epochs=1", "logger=none"]


class Crash(Exception):
    """The stand-in for a kill."""


class CrashInValidation(L.Callback):
    """Raises at the first validation batch of ``epoch`` (after its training batches)."""

    def __init__(self, epoch: int = 0):
        self.epoch = epoch

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            raise Crash(f"killed in the validation of epoch {self.epoch}")


class ValidatedEpochs(L.Callback):
    """(epoch, global step) of every validation that ran to its end, in this process."""

    seen: list = []

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            ValidatedEpochs.seen.append((trainer.current_epoch, trainer.global_step))


CALLBACK = f"+callbacks.{{name}}._target_={__name__}.{{cls}}"


def ckpt_steps(folder: Path) -> dict[str, int]:
    return {p.name: torch.load(p, weights_only=False)["global_step"] for p in sorted(folder.glob("*.ckpt"))}


def test_one_last_ckpt_and_it_is_the_newest(make_cfg):
    """2 epochs of 4 steps, last.ckpt every 3 steps: steps 3, 6 and the epoch ends 4, 8 all go to one file,
    which holds step 8 at the end (Lightning's two save_last callbacks left last.ckpt at 6, last-v1 at 4)."""
    from train import train

    cfg = make_cfg(*SFT, "sft.max_epochs=2", "callbacks.step_checkpoint.every_n_train_steps=3")
    metrics = train(cfg)
    steps = ckpt_steps(Path(cfg.sft.checkpoint_dir))
    assert metrics["sft_train"]["steps"] == 8
    assert [n for n in steps if n.startswith("last")] == ["last.ckpt"], steps
    assert steps["last.ckpt"] == 8


def test_a_crash_during_validation_validates_that_epoch_after_the_resume(make_cfg, tmp_path):
    """last.ckpt every 2 steps; the run dies in epoch 0's validation (after step 4). Step 4 ends the epoch
    and its validation follows, so last.ckpt holds step 2: the resume trains steps 3-4 again and validates
    epoch 0, then epoch 1 (before: Lightning resumed from step 4 into epoch 1, epoch 0 never validated)."""
    from train import train

    cut = make_cfg(*SFT, "sft.max_epochs=2", "callbacks.step_checkpoint.every_n_train_steps=2",
                   CALLBACK.format(name="crash", cls="CrashInValidation"))
    with pytest.raises(Crash):
        train(cut)
    last = Path(cut.sft.checkpoint_dir) / "last.ckpt"
    assert ckpt_steps(last.parent)["last.ckpt"] == 2
    from conftest import compose_cfg

    ValidatedEpochs.seen = []
    resumed = compose_cfg([*SFT, "sft.max_epochs=2", "callbacks.step_checkpoint.every_n_train_steps=2",
                           CALLBACK.format(name="seen", cls="ValidatedEpochs"), f"ckpt_path={last}"],
                          tmp_path / "resumed", Path(cut.paths.cache_dir))
    train(resumed)
    assert ValidatedEpochs.seen == [(0, 4), (1, 8)]


def export_meta(export: Path) -> dict:
    return json.loads((export / "msa_policy.json").read_text())


def test_a_resume_in_a_new_run_dir_keeps_the_checkpoints_best_epoch_as_best(make_cfg, tmp_path):
    """Run A validates its one epoch and exports it as best. B resumes A's last.ckpt in a new run directory
    for one more epoch that is not validated (every 3rd epoch): its best is still A's epoch 0, so B's
    checkpoints/best is a copy of A's export, epoch and score included (before: B's last weights, unlabelled).
    Without A's export, B refuses before training, naming the checkpoint and the export."""
    from conftest import compose_cfg
    from train import train

    a = make_cfg(*SFT, "sft.max_epochs=1")
    train(a)
    a_best = Path(a.sft.checkpoint_dir) / "best"
    assert export_meta(a_best)["epoch"] == 0
    resume = [*SFT, "sft.max_epochs=2", "sft.val_every_n_epochs=3", f"ckpt_path={a.sft.checkpoint_dir}/last.ckpt"]
    b = compose_cfg(resume, tmp_path / "b", Path(a.paths.cache_dir))
    metrics = train(b)
    b_best = Path(b.sft.checkpoint_dir) / "best"
    assert export_meta(b_best) == export_meta(a_best)
    assert {p.name: p.read_bytes() for p in b_best.iterdir() if p.is_file()} == \
        {p.name: p.read_bytes() for p in a_best.iterdir() if p.is_file()}
    assert metrics["sft_train"]["best_epoch"] == 0 and metrics["sft_train"]["steps"] == 8
    assert not (Path(b.sft.checkpoint_dir) / "final").exists()

    import shutil

    shutil.rmtree(a_best)
    c = compose_cfg(resume, tmp_path / "c", Path(a.paths.cache_dir))
    with pytest.raises(FileNotFoundError, match=f"ckpt_path=.*last.ckpt.*epoch 0.*{a_best}.*does not exist"):
        train(c)


def test_without_validation_the_last_weights_are_final_never_best(make_cfg):
    """One epoch, validation every 2nd: nothing was validated, so the export is checkpoints/final (step 4,
    no score) and the test pass scores it (before: the last weights were exported as best)."""
    from train import train

    cfg = make_cfg(*SFT, "sft.max_epochs=1", "sft.val_every_n_epochs=2")
    metrics = train(cfg)
    ckpt = Path(cfg.sft.checkpoint_dir)
    assert not (ckpt / "best").exists()
    meta = export_meta(ckpt / "final")
    assert meta["step"] == 4 and meta["val_score"] is None and meta["weights"] == "final (no validation ran)"
    assert metrics["sft_train"]["export"] == str(ckpt / "final") and metrics["sft"]["demo"]["n"] == 3


def test_eval_counts_the_clips_it_skipped(make_cfg, tmp_path):
    """A SIMS-layout test split of 4 clips, one truncated and one missing, data.on_error=skip: the eval
    stage scores 2 and metrics.json says 2 were skipped (before: n 2 and nothing else)."""
    from data_fixtures import SIMS_HEADER, make_clip, truncate, write_labels

    from train import train

    root = tmp_path / "sims"
    rows = [["video_0001", f"000{k}", "fine words", label, label, label, label, "Neutral", "test"]
            for k, label in enumerate(("0.8", "-0.4", "0.0", "0.6"), start=1)]
    write_labels(root, rows, SIMS_HEADER)
    for k, (vid, cid, *_) in enumerate(rows):
        if cid != "0003":  # 0003 is missing
            make_clip(root / "Raw" / vid / f"{cid}.mp4", 1.0, tone=300.0 + 50 * k, shade=10 * k)
    truncate(root / "Raw" / "video_0001" / "0002.mp4")
    cfg = make_cfg("stage=eval", "model=tiny", "data=sims", f"data.root={root}", "data.on_error=skip",
                   "eval.datasets=[sims]", "eval.max_new_tokens=4", "logger=none")
    train(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["eval"]["sims"]
    assert (saved["n"], saved["skipped"]) == (2, 2)


def hydra_run_dir(overrides: list[str]) -> str:
    """``hydra.run.dir`` as a launch of ``python train.py <overrides>`` resolves it (its own config)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import msa.config  # noqa: F401  registers the schema and the msa.unique_dir resolver
    from conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg, cfg.hydra.run.dir


def test_two_launches_in_the_same_second_get_two_run_dirs(tmp_path, monkeypatch):
    """The clock frozen at one second: the first launch's run dir is outputs/sft/<second>, the second's
    <second>_1, each created by its claim (before: both outputs/sft/<second>, one directory for two runs).
    Within a run every reading gives the same directory (the DDP launcher reads it again for its ranks)."""
    import datetime

    import hydra.core.utils

    class Frozen(datetime.datetime):  # Hydra's ``now`` resolver reads hydra.core.utils.datetime.now()
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 1, 0, 0, 0)

    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    (cfg_a, first), (cfg_b, second) = hydra_run_dir(["stage=sft", "seed=1"]), hydra_run_dir(["stage=sft", "seed=2"])
    assert (first, second) == ("outputs/sft/2026-01-01_00-00-00", "outputs/sft/2026-01-01_00-00-00_1")
    assert cfg_a.hydra.run.dir == first and cfg_b.hydra.run.dir == second  # cached: claimed once
    assert sorted(p.name for p in (tmp_path / "outputs" / "sft").iterdir()) == \
        ["2026-01-01_00-00-00", "2026-01-01_00-00-00_1"]


def test_claim_dir_is_atomic_between_processes(tmp_path):
    """8 processes claim one name at once: 8 distinct directories, base and _1 .. _7."""
    from concurrent.futures import ProcessPoolExecutor

    from msa.runtime import claim_dir

    with ProcessPoolExecutor(4) as pool:
        got = list(pool.map(claim_dir, [str(tmp_path / "run")] * 8))
    assert sorted(got) == sorted([str(tmp_path / "run")] + [str(tmp_path / f"run_{k}") for k in range(1, 8)])


def run_cli(args, cache_dir, timeout=120):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args,line", [
    (["+sft.max_epoch=5"], "error: sft.max_epoch: not a key of sft (did you mean sft.max_epochs?)"),
    (["-m", "+grpo.betta=0.1,0.2"], "error: grpo.betta: not a key of grpo (did you mean grpo.beta?)"),
    (["data.batch_size=two"], "error: data.batch_size: must be an integer, got 'two'"),
])
def test_config_holes_fail_with_one_line_naming_the_key(args, line, cache_dir):
    """A misspelled key added with + (ignored before), a word for a number (a TypeError's text before)."""
    r = run_cli(args, cache_dir)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), r.stderr


def test_keys_added_on_purpose_still_compose(tmp_path):
    """The README's + keys (a re-split or another conflict share of a synthetic set), a data module's
    argument and a Trainer argument pass the added-key check."""
    from conftest import CONF

    from msa.config import check_added_keys

    check_added_keys(["+data.splits=[0.7,0.15,0.15]", "+data.conflict=0.3", "+data.predict_split=test",
                      "+trainer.max_time=00:01:00:00", "+callbacks.mine._target_=x.Y", "+experiment=paper"], CONF)


def test_ckpt_path_is_refused_where_it_would_be_ignored_or_loaded_twice(make_cfg, tmp_path):
    """stage=eval resumes nothing (before: ckpt_path was ignored); the pipeline has two training stages,
    each of which would load the same checkpoint."""
    from msa.config import ConfigError, validate

    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^ckpt_path: resumes a training stage .* init_from="):
        validate(make_cfg("stage=eval", f"ckpt_path={ckpt}"))
    with pytest.raises(ConfigError, match=r"^ckpt_path: resumes one training stage.*\['sft', 'grpo'\]"):
        validate(make_cfg(f"ckpt_path={ckpt}"))
    validate(make_cfg("stage=sft", "sft.answer=score", f"ckpt_path={ckpt}"))


def test_eval_split_takes_the_documented_aliases(make_cfg):
    """eval.split=val (and dev, validation) is the valid split, as in the label files (refused before)."""
    from msa.config import validate
    from msa.plan import eval_targets

    for alias in ("val", "dev", "Validation"):
        cfg = make_cfg("stage=eval", f"eval.split={alias}")
        validate(cfg)
        assert {t.split for t in eval_targets(cfg)} == {"valid"}


def test_simsv2_reads_meta_csv_and_names_the_label_csv_beside_it(tmp_path, caplog):
    """A CH-SIMS v2 root holding meta.csv (its release's label file) and a label.csv: meta.csv is read and
    a warning names both (before: label.csv, silently); SIMS in the same case reads label.csv."""
    from data_fixtures import SIMS_HEADER, write_labels

    from msa.data.labels import read_labels

    row = ["video_0001", "00001", "words", "{}", "0.2", "0.2", "0.2", "Positive", "train"]
    write_labels(tmp_path, [[*row[:3], "0.4", *row[4:]]], SIMS_HEADER, name="meta.csv")
    write_labels(tmp_path, [[*row[:3], "-0.8", *row[4:]]], SIMS_HEADER, name="label.csv")
    with caplog.at_level("WARNING", logger="msa.data.labels"):
        frame = read_labels(tmp_path, "simsv2")
    assert frame["label"].tolist() == [0.4] and frame.attrs["label_file"] == str(tmp_path / "meta.csv")
    assert f"simsv2: reading {tmp_path / 'meta.csv'}; {tmp_path / 'label.csv'} beside it is not read" in caplog.text
    assert read_labels(tmp_path, "sims")["label"].tolist() == [-0.8]


class KillInValidation(L.Callback):
    """SIGKILLs its own process at the first validation batch of ``epoch``: a real kill, no cleanup."""

    def __init__(self, epoch: int = 0):
        self.epoch = epoch

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_sft_killed_in_validation_resumes_in_a_new_run_dir_and_validates_that_epoch(cache_dir, tmp_path):
    """python train.py stage=sft, killed (SIGKILL) in epoch 0's validation, then resumed from its last.ckpt
    in another run directory as the README says: one last.ckpt (step 2: the step that ends epoch 0 is not
    written before its validation), both epochs validated after the resume, and checkpoints/best of the
    resumed run is a validated epoch with its score (never the last weights)."""
    import csv
    import os
    import subprocess
    import sys

    from conftest import ROOT

    args = [a for a in SFT if a != "logger=none"] + ["logger=csv", "sft.max_epochs=2",
                                                      "callbacks.step_checkpoint.every_n_train_steps=2"]
    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", WANDB_MODE="offline",
               PYTHONPATH=str(ROOT / "tests"))

    def launch(*extra):
        return subprocess.run([sys.executable, "train.py", *args, *extra], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=900)

    a, b = tmp_path / "a", tmp_path / "b"
    r = launch(f"hydra.run.dir={a}", f"+callbacks.kill._target_={__name__}.KillInValidation")
    assert r.returncode == -9, r.stderr[-2000:]
    assert ckpt_steps(a / "checkpoints") == {"last.ckpt": 2}
    r = launch(f"hydra.run.dir={b}", f"ckpt_path={a / 'checkpoints' / 'last.ckpt'}")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(next((b / "sft").rglob("metrics.csv")))))
    assert sorted(int(row["epoch"]) for row in rows if row.get("val/score")) == [0, 1]
    assert [n for n in ckpt_steps(b / "checkpoints") if n.startswith("last")] == ["last.ckpt"]
    meta = export_meta(b / "checkpoints" / "best")
    assert meta["epoch"] in (0, 1) and meta["val_score"] is not None
    saved = json.loads((b / "metrics.json").read_text())["sft_train"]
    assert saved["best_epoch"] == meta["epoch"] and saved["steps"] == 8
