"""The Discrimination-Calibration (DC) answer format: prompt, strict parser, polarity mapping.

Pure functions; the facts about each dataset (range, neutral band, precision) come from
:mod:`msa.data.specs`.
"""

from msa.dc.parser import HINT_FOLLOWS, Parsed, format_answer, format_score, hint_prefill, parse_completion
from msa.dc.polarity import POLARITIES, polarity_of
from msa.dc.prompt import MEDIA_PLACEHOLDER, SCORE_SYSTEM_PROMPT, SYSTEM_PROMPT, build_conversation

__all__ = [
    "HINT_FOLLOWS", "MEDIA_PLACEHOLDER", "POLARITIES", "Parsed", "SCORE_SYSTEM_PROMPT", "SYSTEM_PROMPT",
    "build_conversation", "format_answer", "format_score", "hint_prefill", "parse_completion", "polarity_of",
]
