"""One module per stage, named as the stage: ``stage=cot`` -> :mod:`msa.stages.cot`, etc.

Each exposes ``run(ctx: RunContext) -> dict`` returning the metrics it records.
"""

from __future__ import annotations

import importlib

MODULES = {"cot": "msa.stages.cot", "sft": "msa.stages.sft", "grpo": "msa.stages.grpo", "eval": "msa.stages.evaluate"}


def run_stage(name: str, ctx):
    return importlib.import_module(MODULES[name]).run(ctx)
