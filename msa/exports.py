"""What an export says about itself, and the facts a run takes from it.

An export directory (``<run>/sft/checkpoints/best``, ``<run>/grpo/policy``) carries ``msa_policy.json``,
written by :func:`msa.models.export_policy`: the stage, the dataset it was trained on, the answer format
it writes (``dc`` or the ``score`` baseline), the range it answers in and the modalities it read.
Scoring an export with other settings is silently wrong (a score-baseline export parsed as DC fails
every answer), so the eval stage takes each of these facts from the export unless the config sets it:

* ``answer``: ``eval.answer``, else the export's, else ``sft.answer``;
* ``range_dataset``: ``eval.range_dataset``, else the export's (or its ``dataset``), else ``data.name``;
* ``modalities``: ``eval.modalities``, else the export's, else ``data.modalities``.

:func:`export_facts` says which source each value came from; the plan prints it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

EXPORT_META = "msa_policy.json"
MODALITIES = ("text", "audio", "video")


def read_export_meta(path: str | Path | None) -> dict:
    """The export's ``msa_policy.json`` as a dict; ``{}`` without a path or file (a base model)."""
    if not path:
        return {}
    meta = Path(path) / EXPORT_META
    return json.loads(meta.read_text()) if meta.exists() else {}


def enabled_modalities(switches) -> list[str]:
    """The names switched on in a ``{text: true, audio: false, ...}`` node (or a list of names), in order.

    >>> enabled_modalities({"text": True, "audio": False, "video": True}), enabled_modalities(["video", "text"])
    (['text', 'video'], ['text', 'video'])
    """
    if switches is None:
        return list(MODALITIES)
    if isinstance(switches, DictConfig):
        switches = OmegaConf.to_container(switches, resolve=True)
    on = [m for m, v in switches.items() if v] if isinstance(switches, dict) else list(switches)
    return [m for m in MODALITIES if m in on]


@dataclass(frozen=True)
class Fact:
    value: object
    source: str  # the config key that set it, or "export" (msa_policy.json)


def export_facts(cfg: DictConfig, policy_dir: str | Path | None) -> dict[str, Fact]:
    """``answer``, ``range_dataset`` and ``modalities`` for scoring the export at ``policy_dir`` (None: a
    base model), each from the config when it sets it, else from the export, else the run's defaults."""
    meta = read_export_meta(policy_dir)
    ecfg = cfg.eval

    def pick(key: str, own, exported, default_key: str, default) -> Fact:
        if own is not None:
            return Fact(own, f"eval.{key}")
        if exported is not None:
            return Fact(exported, "export")
        return Fact(default, default_key)

    return {
        "answer": pick("answer", ecfg.get("answer"), meta.get("answer"), "sft.answer", str(cfg.sft.answer)),
        "range_dataset": pick("range_dataset", ecfg.get("range_dataset"),
                              meta.get("range_dataset") or meta.get("dataset"), "data.name", str(cfg.data.name)),
        "modalities": pick("modalities", enabled_modalities(ecfg.modalities) if ecfg.get("modalities") else None,
                           meta.get("modalities"), "data.modalities", enabled_modalities(cfg.data.get("modalities"))),
    }


def format_facts(facts: dict[str, Fact]) -> str:
    """One line for the plan.

    >>> format_facts({"answer": Fact("score", "export"), "modalities": Fact(["text"], "eval.modalities")})
    'answer score (export), modalities text (eval.modalities)'
    """
    def show(v):
        return "+".join(v) if isinstance(v, list) else str(v)

    return ", ".join(f"{k} {show(f.value)} ({f.source})" for k, f in facts.items())
