#!/usr/bin/env bash
# The hint study: per seed, cot (text-led rule teacher) + SFT once, then four GRPO settings from that SFT
# export; then the table and curves.
#
#   bash experiments/hint_study/run.sh                     # seeds 0 1 2 into outputs/hint_study
#   OUT=outputs/hs SEEDS="0 1 2 3" STEPS=60 bash experiments/hint_study/run.sh
#
# Sizes (see README.md here for the time they take): data=study (210 train / 70 valid / 420 test clips),
# SFT_EPOCHS epochs with one validation at the end (its best = its last), GRPO STEPS steps of 4 prompts x
# G=4 (the demo preset). A finished run is skipped, so the script resumes after an interruption (a run
# that died midway is started again in a fresh directory: delete the half-written one first).
set -euo pipefail
OUT=${OUT:-outputs/hint_study}
SEEDS=${SEEDS:-"0 1 2"}
SFT_EPOCHS=${SFT_EPOCHS:-12}
STEPS=${STEPS:-60}
COMMON=(data=study "eval.batch_size=${EVAL_BATCH:-32}" logger=csv)
SETTINGS=("hint=true" "hint=false" "hard=false" "grpo.hint_mode=anchored")
NAMES=(hint nohint nohard anchored)

for seed in $SEEDS; do
  sft="$OUT/sft_s$seed"
  if [ ! -f "$sft/metrics.json" ] || ! grep -q '"sft"' "$sft/metrics.json"; then
    python train.py "${COMMON[@]}" 'stage.run=[cot,sft]' teacher.text_led=true seed="$seed" \
      sft.max_epochs="$SFT_EPOCHS" sft.val_every_n_epochs="$SFT_EPOCHS" hydra.run.dir="$sft"
  fi
  for i in "${!SETTINGS[@]}"; do
    run="$OUT/${NAMES[$i]}_s$seed"
    if [ -f "$run/metrics.json" ] && grep -q '"grpo"' "$run/metrics.json"; then continue; fi
    python train.py "${COMMON[@]}" stage=grpo init_from="$sft/checkpoints/best" "${SETTINGS[$i]}" seed="$seed" \
      grpo.max_steps="$STEPS" hydra.run.dir="$run"
  done
done
python experiments/hint_study/summarise.py "$OUT" --out "$OUT"
