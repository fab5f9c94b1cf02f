"""Shared fixtures: one cache directory per test session (the tiny model and the demo set are built
once), offline hub settings, and Hydra composition with a temporary output directory: the whole run
config (``make_cfg``) or one node of it as conf/ defines it (``tiny_cfg``, ``grpo_cfg``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
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


# The tests' LoRA: smaller than conf/model/tiny.yaml's (r=8, alpha=16).
LORA_R4 = ("model.lora.r=4", "model.lora.alpha=8")


def compose_node(node: str, overrides: Sequence[str] = (), *, cache_dir: Path, output_dir: Path):
    """One node (``model``, ``grpo``, ...) of the config ``python train.py experiment=none <overrides>``
    runs: the group defaults exactly as conf/ holds them, interpolations resolved, as a plain DictConfig.
    A later override of a key replaces an earlier one (a test's own values over its module's)."""
    from omegaconf import OmegaConf

    latest = {o.split("=", 1)[0]: o for o in overrides}
    return OmegaConf.create(_composed_node(node, tuple(latest.values()), str(cache_dir), str(output_dir)))


@functools.lru_cache(maxsize=None)
def _composed_node(node: str, overrides: tuple[str, ...], cache_dir: str, output_dir: str) -> dict:
    from omegaconf import OmegaConf

    cfg = compose_cfg(["experiment=none", *overrides], Path(output_dir), Path(cache_dir))
    return OmegaConf.to_container(cfg[node], resolve=True)


@pytest.fixture(scope="session")
def tiny_cfg(cache_dir, tmp_path_factory):
    """``model=tiny`` (conf/model/tiny.yaml: tiny_size=test, LoRA on) on the session cache, with overrides:
    ``tiny_cfg(*LORA_R4, "model.dtype=bfloat16")``."""
    out = tmp_path_factory.mktemp("run")

    def _make(*overrides: str):
        return compose_node("model", overrides, cache_dir=cache_dir, output_dir=out)

    return _make


@pytest.fixture(scope="session")
def grpo_cfg(cache_dir, tmp_path_factory):
    """conf/grpo/default.yaml with overrides: ``grpo_cfg("grpo.lr=1e-2", "grpo.max_steps=1")``."""
    out = tmp_path_factory.mktemp("run")

    def _make(*overrides: str):
        return compose_node("grpo", overrides, cache_dir=cache_dir, output_dir=out)

    return _make
