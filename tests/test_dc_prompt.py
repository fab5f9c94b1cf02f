"""The DC prompt: range, closed set, cue order per modality, media items, cross-dataset range."""

from __future__ import annotations

import pytest

from msa.dc import MEDIA_PLACEHOLDER, SCORE_SYSTEM_PROMPT, SYSTEM_PROMPT, build_conversation


def _user(msgs: list[dict]) -> tuple[list[str], str]:
    content = msgs[1]["content"]
    return [item["type"] for item in content], content[-1]["text"]


def test_full_conversation_shape_and_content():
    msgs = build_conversation("我今天很开心", "sims")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == [{"type": "text", "text": SYSTEM_PROMPT}]
    # audio+video: one video item (its audio goes in with use_audio_in_video), then the text
    assert msgs[1]["content"][0] == {"type": "video", "video": MEDIA_PLACEHOLDER}
    types, text = _user(msgs)
    assert types == ["video", "text"]
    assert text.endswith("Transcript: 我今天很开心")
    assert "[-1.0, 1.0]" in text and "(-0.1, 0.1]" in text  # SIMS range and its right-closed neutral band
    assert "(negative, neutral or positive)" in text
    assert "<polarity>...</polarity><think>...</think><score>...</score>" in text
    # the cues come in the order text, audio, visual
    assert text.index("text cues") < text.index("audio cues") < text.index("visual cues")


def test_system_prompt_states_the_dc_format():
    for piece in ("<polarity>", "<think>", "<score>", "negative, neutral, positive",
                  "text cues, then the audio cues, then the visual cues"):
        assert piece in SYSTEM_PROMPT


@pytest.mark.parametrize("modalities, types, cues, absent, has_transcript", [
    (("text",), ["text"], ["text cues"], ["audio cues", "visual cues"], True),
    (("text", "audio"), ["audio", "text"], ["text cues", "audio cues"], ["visual cues"], True),
    (("audio", "text"), ["audio", "text"], ["text cues", "audio cues"], ["visual cues"], True),  # order ignored
    (("video",), ["video", "text"], ["visual cues"], ["text cues", "audio cues"], False),
    (("audio",), ["audio", "text"], ["audio cues"], ["text cues", "visual cues"], False),
    (("audio", "video"), ["video", "text"], ["audio cues", "visual cues"], ["text cues"], False),
])
def test_only_enabled_modalities(modalities, types, cues, absent, has_transcript):
    got_types, text = _user(build_conversation("hello there", "mosi", modalities=modalities))
    assert got_types == types
    assert all(c in text for c in cues) and not any(a in text for a in absent)
    assert ("Transcript: hello there" in text) == has_transcript
    assert ("No transcript is given" in text) == (not has_transcript)
    assert "[-3.0, 3.0]" in text and "[-0.5, 0.5]" in text  # MOSI range, both-closed neutral band


def test_cross_dataset_range_wins():
    _, text = _user(build_conversation("ok", "mosi", range_dataset="sims"))  # a SIMS-trained model on MOSI
    assert "[-1.0, 1.0]" in text and "[-3.0, 3.0]" not in text
    _, text = _user(build_conversation("ok", "sims", range_dataset="mosei"))
    assert "[-3.0, 3.0]" in text and "[-1.0, 1.0]" not in text


def test_score_only_prompt():
    msgs = build_conversation("ok", "sims", answer="score")
    assert msgs[0]["content"][0]["text"] == SCORE_SYSTEM_PROMPT
    _, text = _user(msgs)
    assert "<score>...</score>" in text and "<polarity>" not in text and "<think>" not in text
    assert "[-1.0, 1.0]" in text
    assert "<polarity>" not in SCORE_SYSTEM_PROMPT


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="smell"):
        build_conversation("x", "sims", modalities=("text", "smell"))
    with pytest.raises(ValueError, match="empty"):
        build_conversation("x", "sims", modalities=())
    with pytest.raises(TypeError, match="string"):
        build_conversation("x", "sims", modalities="text")
    with pytest.raises(ValueError, match="answer"):
        build_conversation("x", "sims", answer="json")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_conversation("x", "sims", range_dataset="imdb")
    with pytest.raises(TypeError, match="transcript"):
        build_conversation(None, "sims")
