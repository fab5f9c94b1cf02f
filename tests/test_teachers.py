"""Teachers: the rule teacher's chains (they parse, pass every filter, carry the true score, follow the
unimodal labels and the enabled modalities, vary by seed, fail clearly without unimodal labels), the
tiny HF teacher's batched sampling and judge prompt, and the backends' errors."""

from __future__ import annotations

import importlib.util
import math
import random

import pytest

from msa.cot.filters import evaluate, first_failure, missing_modalities
from msa.cot.judge_prompt import judge_conversation
from msa.cot.model_teachers import build_teacher
from msa.cot.rule_teacher import RuleTeacher, conclusion_sentence, cue_sentence, rule_chain, strength
from msa.dc import format_score, parse_completion, polarity_of
from msa.seeding import stable_seed

ALL = ("text", "audio", "video")

# (label, label_T, label_A, label_V) on the SIMS grid, every polarity, agreeing and dissenting cues.
ROWS = [
    (0.6, 0.8, 0.6, -0.2),    # positive, visual dissents
    (-1.0, -1.0, -0.8, -1.0),  # strongly negative, all agree
    (0.0, 0.4, -0.4, 0.0),    # neutral: opposite cues cancel
    (0.0, 0.0, 0.0, 0.0),     # neutral: no cue
    (0.2, 0.2, 0.0, 0.2),     # slightly positive
    (-0.2, 0.6, -0.6, -0.8),  # slightly negative, text dissents
    (-0.1, -0.2, 0.0, 0.0),   # -0.1 is negative on SIMS: (-0.1, 0.1] is neutral
]


def batch_of(rows, transcript="I really liked the food there"):
    return {"ids": [f"video_{i:04d}$_$0001" for i in range(len(rows))], "transcripts": [transcript] * len(rows),
            **{k: [r[j] for r in rows] for j, k in enumerate(("label", "label_T", "label_A", "label_V"))}}


@pytest.mark.parametrize("mods", [ALL, ("text", "audio"), ("video",)])
def test_rule_chains_parse_and_pass_every_filter(mods):
    teacher = RuleTeacher("demo", mods, seed=0, num_samples=3)
    out = teacher.generate(batch_of(ROWS))
    assert [len(x) for x in out] == [3] * len(ROWS)
    for row, samples in zip(ROWS, out):
        label = row[0]
        for text in samples:
            p = parse_completion(text, "demo")
            assert p.well_formed, text
            assert p.polarity == polarity_of(label, "demo")
            assert text.endswith(f"<score>{format_score(label, 'demo')}</score>")
            v = evaluate(p, true_polarity=polarity_of(label, "demo"), dataset="demo", modalities=mods)
            assert first_failure(v) is None, (text, v)
            # Modalities that are off are not discussed.
            off = [m for m in ALL if m not in mods]
            assert missing_modalities(p.reasoning, off) == off, p.reasoning


def test_rule_chain_follows_the_unimodal_labels():
    rng = random.Random(0)
    # label_V = -0.2 dissents from a positive clip: the visual sentence is negative and the conclusion says so.
    row = {"id": "a", "transcript": "x", "label": 0.6, "label_T": 0.8, "label_A": 0.6, "label_V": -0.2}
    reasoning = parse_completion(rule_chain(row, "demo", ALL, rng), "demo").reasoning
    assert "The visual cue points the other way, but the textual and vocal cues outweigh it" in reasoning
    # Valence and strength of each cue sentence follow its own label, whatever the template.
    for seed in range(12):
        neg = cue_sentence("video", -1.0, "demo", random.Random(seed))
        assert any(w in neg for w in ("displeased", "unhappy", "tense and negative")), neg
        assert any(w in neg for w in ("very", "markedly", "distinctly")), neg
        pos = cue_sentence("audio", 0.2, "demo", random.Random(seed))
        assert any(w in pos for w in ("cheerful", "bright", "energetic", "warm")), pos
        assert any(w in pos for w in ("slightly", "mildly", "a little")), pos
        flat = cue_sentence("text", 0.0, "demo", random.Random(seed), transcript="ok")
        assert any(w in flat for w in ("neutral", "matter-of-fact", "plain")), flat
    # A neutral clip whose cues point both ways is said to cancel out or balance.
    c = conclusion_sentence("neutral", 0.0, {"text": 1, "audio": -1, "video": 0}, "demo", random.Random(0))
    assert "neutral" in c and ("cancel" in c or "balance" in c)


def test_strength_by_hand():
    # |x| / score_max against the neutral half-width 0.1 and the cuts 0.35, 0.7 (SIMS scale).
    assert [strength(x, "demo") for x in (0.0, -0.1, 0.2, -0.4, 0.6, 0.8, -1.0)] == [0, 0, 1, 2, 2, 3, 3]
    # MOSI scale: divide by 3 first; 0.5 is inside [-0.5, 0.5] -> 0; 0.9 / 3 = 0.3 -> 1; 1.2 / 3 = 0.4 -> 2.
    assert [strength(x, "demo_mosi") for x in (0.5, 0.9, -1.2, 2.4)] == [0, 1, 2, 3]


def test_rule_teacher_is_seeded_per_clip_and_varied():
    rows = [(0.6, 0.8, 0.6, 0.4)] * 40
    a = RuleTeacher("demo", ALL, seed=0).generate(batch_of(rows))
    b = RuleTeacher("demo", ALL, seed=0).generate(batch_of(rows[:5]))  # another batching, same ids
    assert a[:5] == b
    c = RuleTeacher("demo", ALL, seed=1).generate(batch_of(rows))
    assert a != c
    # Same labels, 40 clips: the templates and words vary (3 sentence templates per modality at least).
    assert len({x[0] for x in a}) >= 10
    assert stable_seed(0, "a") != stable_seed(0, "b")


def test_rule_teacher_needs_unimodal_labels():
    rows = [(0.6, math.nan, math.nan, math.nan)]
    with pytest.raises(ValueError, match=r"no label_T, label_A, label_V.*MOSI/MOSEI"):
        RuleTeacher("demo_mosi", ALL).generate(batch_of(rows))
    # With text off, a missing label_T does not matter.
    out = RuleTeacher("demo", ("audio", "video")).generate(batch_of([(0.6, math.nan, 0.6, 0.6)]))
    assert parse_completion(out[0][0], "demo").well_formed


def test_rule_chain_on_the_mosi_scale():
    row = {"id": "a", "transcript": "fine", "label": -1.8, "label_T": -2.4, "label_A": -1.2, "label_V": -0.6}
    text = rule_chain(row, "demo_mosi", ALL, random.Random(0))
    assert text.startswith("<polarity>negative</polarity>") and text.endswith("<score>-1.8</score>")


def test_quotes_never_carry_tags():
    rows = [(0.6, 0.8, 0.6, 0.4)] * 20
    out = RuleTeacher("demo", ALL).generate(batch_of(rows, transcript="ha <score>1.0</score> ha"))
    for (text,) in out:
        assert parse_completion(text, "demo").well_formed


def test_judge_conversation_keeps_the_media_and_asks_yes_or_no():
    msgs = judge_conversation("so good", "demo", "positive", "Warm words.", ALL)
    assert msgs[0]["content"][0]["text"].endswith("yes or no.")
    user = msgs[1]["content"]
    assert [c["type"] for c in user] == ["video", "text"]
    assert "Transcript: so good" in user[1]["text"] and "Reasoning: Warm words." in user[1]["text"]
    # Text off: the transcript is not shown to the judge either.
    assert "Transcript" not in judge_conversation("so good", "demo", "positive", "x", ("audio",))[1]["content"][-1]["text"]


def test_build_teacher_errors():
    with pytest.raises(ValueError, match="teacher.kind='gpt'"):
        build_teacher({"kind": "gpt"}, dataset="demo", modalities=ALL)
    with pytest.raises(ValueError, match="teacher.path"):
        build_teacher({"kind": "hf", "path": None}, dataset="demo", modalities=ALL)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_teacher({"kind": "hf", "path": "/nonexistent/ckpt"}, dataset="demo", modalities=ALL)
    assert isinstance(build_teacher({"kind": "rule", "seed": 3}, dataset="demo", modalities=ALL), RuleTeacher)



def test_model_teachers_judge_with_one_signature():
    import inspect

    from msa.cot.model_teachers import HFTeacher, VLLMTeacher

    assert inspect.signature(HFTeacher.judge) == inspect.signature(VLLMTeacher.judge)
    assert list(inspect.signature(HFTeacher.judge).parameters) == ["self", "batch"]

@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_backend_without_vllm_says_so():
    with pytest.raises(ImportError, match=r"teacher=vllm needs vllm installed \(GPU machines\)"):
        build_teacher({"kind": "vllm", "path": "/x"}, dataset="demo", modalities=ALL)


def test_hf_teacher_samples_n_per_clip_and_judges(cache_dir, tiny_dir, tmp_path):
    """The tiny model through the data module: 2 samples for each of 2 clips; the judge collator
    renders the judge's question with the clip's media."""
    from msa.cot.judge import judge_collator
    from msa.data.datamodule import build_datamodule

    node = {"kind": "hf", "tiny_size": "test", "cache_dir": str(cache_dir), "dtype": "float32"}
    teacher = build_teacher(node, dataset="demo", modalities=ALL, num_samples=2, temperature=1.0,
                            max_new_tokens=6, seed=0)
    dm = build_datamodule(name="demo", root=cache_dir / "data" / "demo-teachers", n_clips=10,
                          cache_dir=tmp_path / "media", processor=teacher.processor,
                          use_audio_in_video=teacher.use_audio_in_video, limit=2)
    dm.prepare_data()
    dm.setup()
    batch = next(iter(dm.dataloader("train", batch_size=2)))
    out = teacher.generate(batch)
    assert [len(x) for x in out] == [2, 2] and all(isinstance(t, str) for x in out for t in x)
    assert teacher.generate(batch) == out  # seeded from the batch's ids
    col = judge_collator(teacher.processor, modalities=dm.modalities, use_audio_in_video=teacher.use_audio_in_video)
    col.chains = {i: ("positive", "The voice is warm.") for i in batch["ids"]}
    samples = [dm.datasets["train"][k] for k in range(2)]
    jb = col(samples)
    prompt = teacher.tokenizer.decode(jb["input_ids"][0], skip_special_tokens=False)
    assert "Answer yes or no." in prompt and "Reasoning: The voice is warm." in prompt and "<|VIDEO|>" in prompt
    answers = teacher.judge(jb)
    assert len(answers) == 2
    with pytest.raises(ValueError, match="num_samples=2 needs cot.temperature > 0"):
        build_teacher(node, dataset="demo", modalities=ALL, num_samples=2, temperature=0.0)
