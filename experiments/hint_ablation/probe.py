"""Which training prompts are hard for a policy, and how it answers them greedily.

    python experiments/hint_ablation/probe.py <run dir> --export <policy export> --out probe.parquet \
        [--split train] [--ids ids.txt] [--samples 4] [--seed 0]

For each clip of ``--split`` (or of the ids listed in ``--ids``) of the run's dataset, with the run's
data and model settings (its ``resolved_config.yaml``):

* ``--samples`` G answers sampled as GRPO samples them (temperature and top-p of ``grpo``, the
  shared-prompt path of :func:`msa.rl.rollout.sample`), and how many got the polarity right: a clip
  whose count is 0 is *hard* by the default rule (``grpo.hard_rule=all_wrong``);
* the greedy answer (as the eval stage generates it), its polarity and its prediction.

One row per clip: id, label, conflict (if the label file has it), n_right, greedy_polarity_right,
greedy_prediction, greedy_parse_fail. ``--samples 0`` skips the sampling (greedy only).
This is how the ablation finds the prompts that were hard at the start (the SFT policy's) and asks
how the GRPO policies answer those same prompts afterwards.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf


def probe(run_dir: Path, export: Path, *, split: str, samples: int, seed: int, ids: set[str] | None) -> pd.DataFrame:
    from msa.dc import polarity_of
    from msa.evaluation import prediction_records
    from msa.generation import generate_texts
    from msa.models import load_policy, unwrap_peft
    from msa.models.encode import encode_media
    from msa.rl.rewards import total_reward
    from msa.rl.rollout import sample
    from msa.rl.shared_prompt import prompt_pass
    from msa.data.datamodule import build_datamodule

    cfg = OmegaConf.load(run_dir / "resolved_config.yaml")
    dataset = cfg.data.name
    policy = load_policy(cfg.model, init_from=str(export), trainable=False)
    policy.model.eval()
    dm = build_datamodule(cfg.data, processor=policy.processor, use_audio_in_video=policy.use_audio_in_video,
                          answer="dc", predict_split=split, shuffle=False)
    dm.prepare_data()
    dm.setup("predict")
    if ids is not None:
        frame = dm.frames[split]
        missing = ids - set(frame["id"])
        if missing:
            raise ValueError(f"--ids: {len(missing)} ids are not in the {split} split of {dataset}, "
                             f"e.g. {sorted(missing)[:3]}")
        dm.frames[split] = frame[frame["id"].isin(ids)].reset_index(drop=True)
        from msa.data.dataset import MSADataset

        dm.datasets[split] = MSADataset(dm.frames[split], dataset, dm.cache, modalities=dm.modalities)
    conflict = dm.frames[split].set_index("id")["conflict"]  # NaN where the label file has no such column
    torch.manual_seed(seed)
    g = cfg.grpo
    rows = []
    for batch in dm.dataloader(split):
        if not batch["ids"]:
            continue
        uaiv = batch["use_audio_in_video"]
        right = [None] * len(batch["ids"])
        if samples:
            thinker = unwrap_peft(policy.model)
            with torch.no_grad():
                media = encode_media(thinker, batch)
                b = torch.arange(len(batch["ids"]))
                prompts = prompt_pass(policy.model, thinker, batch, media, b, uaiv)
                s = sample(policy.model, thinker, policy.tokenizer, batch, media, b, group_size=samples,
                           max_new_tokens=int(g.max_new_tokens), temperature=float(g.temperature),
                           top_p=float(g.top_p), use_audio_in_video=uaiv, prompts=prompts)
            per_label = [float(batch["label"][i]) for i in s.prompt_rows.tolist()]
            _, per_fn = total_reward(s.texts, weights=dict(g.reward_weights), label=per_label, dataset=dataset,
                                     form=g.score_form)
            ok = torch.tensor([v > 0 for v in per_fn["polarity"]]).view(-1, samples)
            right = ok.sum(1).tolist()
        with torch.no_grad():
            texts = generate_texts(policy.model, policy.tokenizer, batch, max_new_tokens=int(cfg.eval.max_new_tokens),
                                   use_audio_in_video=uaiv)
        for i, rec in enumerate(prediction_records(texts, batch, dataset=dataset, range_dataset=dataset)):
            label = rec["label"]
            rows.append({"id": rec["id"], "label": label,
                         "conflict": None if pd.isna(conflict[rec["id"]]) else int(conflict[rec["id"]]),
                         "n_right": right[i], "greedy_polarity_right": rec["parsed_polarity"] == polarity_of(label, dataset)
                         and not rec["parse_fail"], "greedy_prediction": rec["prediction"],
                         "greedy_parse_fail": rec["parse_fail"]})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a run directory (its resolved_config.yaml gives data and model)")
    ap.add_argument("--export", type=Path, required=True, help="the policy export to probe")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--ids", type=Path, help="a file of clip ids, one per line: probe only those")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    ids = set(a.ids.read_text().split()) if a.ids else None
    df = probe(a.run_dir, a.export, split=a.split, samples=a.samples, seed=a.seed, ids=ids)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(a.out, index=False)
    hard = (df.n_right == 0).mean() if a.samples else float("nan")
    print(f"{len(df)} clips; hard (0 of {a.samples} right): {hard:.3f}; greedy polarity right: "
          f"{df.greedy_polarity_right.mean():.3f}; parse fail: {df.greedy_parse_fail.mean():.3f}")


if __name__ == "__main__":
    main()
