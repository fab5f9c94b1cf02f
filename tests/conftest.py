"""Shared fixtures: one cache directory per test session (the tiny model and the demo set are built
once), offline hub settings, and Hydra composition with a temporary output directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """Built models, demo data and media caches for the whole session (MSA_CACHE wins when set)."""
    env = os.environ.get("MSA_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("msa-cache")


@pytest.fixture(scope="session")
def tiny_dir(cache_dir) -> Path:
    from msa.models.tiny import ensure_tiny

    return ensure_tiny(cache_dir, size="test")


def compose_cfg(overrides: list[str], output_dir: Path, cache_dir: Path):
    """The config ``python train.py <overrides>`` would run, with paths pointed at temp dirs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import msa.config  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.cache_dir={cache_dir}", *overrides])
    GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(output_dir)
    OmegaConf.set_struct(cfg, True)
    return cfg


@pytest.fixture
def make_cfg(tmp_path, cache_dir):
    def _make(*overrides: str):
        return compose_cfg(list(overrides), tmp_path / "run", cache_dir)

    return _make
