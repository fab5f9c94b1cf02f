"""Policy loading (tiny offline model, local checkpoints, random 7B), LoRA, and encoder reuse."""

from msa.models.loader import Policy, export_policy, load_policy, set_train_mode, trainable_parameters, unwrap_peft

__all__ = ["Policy", "export_policy", "load_policy", "set_train_mode", "trainable_parameters", "unwrap_peft"]
