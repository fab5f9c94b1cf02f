"""What GRPO's ratios and KL need from the policy's numerics: no dropout (``grpo.disable_dropout``) and an
lm_head that computes in float32 under bf16 autocast (``grpo.cast_lm_head_to_fp32``); TRL's options of
those names.

* Dropout: LoRA's (0.05 on the 7B) perturbs what samples and what scores. Rollouts come from a random
  sub-network, the shared prompt applies one mask to all G rows, and with ``num_iterations > 1`` the first
  pass's ratio is not 1 at identical weights. Like TRL we set every dropout probability to 0.
* lm_head: under bf16-mixed the head's matmul runs in bf16 and its logits are rounded to bf16 (ulp 0.125
  at the 7B's logits of 16-32), so log-probs, ratios and the KL come from rounded logits. TRL casts the
  head's weights to float32, but autocast still runs a float32 Linear in bf16; here the head's forward also
  leaves autocast, so its logits really are float32 (sampling uses them too: one distribution throughout).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout probability in ``model`` to 0 (``nn.Dropout`` modules and attention layers'
    ``attention_dropout``); returns how many were non-zero."""
    changed = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            m.p, changed = 0.0, changed + 1
        rate = getattr(m, "attention_dropout", None)
        if isinstance(rate, float) and rate > 0:
            m.attention_dropout, changed = 0.0, changed + 1
    return changed


class Float32Head(nn.Linear):
    """An ``nn.Linear`` whose forward runs in float32 whatever autocast says: ``[..., H] -> [..., V]`` float32."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return F.linear(hidden.float(), self.weight.float(), None if self.bias is None else self.bias.float())


def cast_lm_head_to_fp32(thinker) -> None:
    """Make ``thinker.lm_head`` a :class:`Float32Head` with float32 weights (in place; its parameters keep
    their names, so checkpoints and exports are unchanged). Refused for a head tied to the input embeddings
    (TRL refuses too): casting it would cast the embeddings."""
    head = thinker.lm_head
    if not isinstance(head, nn.Linear):
        raise ValueError(f"grpo.cast_lm_head_to_fp32=true: lm_head is a {type(head).__name__}, not an nn.Linear")
    if head.weight is thinker.get_input_embeddings().weight:
        raise ValueError("grpo.cast_lm_head_to_fp32=true needs an lm_head that is not tied to the input embeddings "
                         "(tie_word_embeddings=true in the model config)")
    head.float()
    head.__class__ = Float32Head
