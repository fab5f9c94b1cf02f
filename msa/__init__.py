"""MSA-Thinker: interpretable multimodal sentiment analysis with an omni LLM.

Stages (one Hydra ``stage`` each): ``cot`` -> ``sft`` -> ``grpo`` -> ``eval``.
"""

__version__ = "0.1.0"
