#!/usr/bin/env bash
# Train the models the catalog ships (CPU, 2 threads). Each run writes model.pt + model_card.json
# (with the exact command) into $OUT/<model>/; scripts/add_to_catalog.py then copies them into
# CardiacAI/models/weights/ and lists them in CardiacAI/models/catalog.json.
# Usage: bash scripts/train_models.sh [OUT] [localizer|whole-heart|ima-aorta-se-swin|ima-aorta ...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/models}"; shift || true
WHICH=("${@:-localizer whole-heart ima-aorta-se-swin ima-aorta}")
CACHE="${CARDIACAI_TRAIN_CACHE:-runs/cache}"
CLI=(.venv/bin/cardiacai train --threads 2 --cache-dir "$CACHE" --no-progress)
# IMA/aorta data and loss, shared by both IMA/aorta networks: 1 mm in-plane so a 2-3 mm IMA is 2-3 voxels wide,
# 2 mm along the vessels (S-I); IMA cross-entropy x10: unweighted, the IMAs were never learnt (docs/segmentation.md).
IMA_DATA=(--task ima-aorta --spacing 1,1,2 --patch-size 32,96,96 --batch-size 2 --samples-per-case 2 --dice-batch
          --class-weights '{"left_internal_mammary_artery": 10, "right_internal_mammary_artery": 10}'
          --train-cases 40 --val-seeds 300000-300002 --fov random
          --protocols cta:0.5,chest_contrast:0.3,chest_noncontrast:0.2 --synthseg-fraction 0.1)
mkdir -p "$OUT"
for which in ${WHICH[@]}; do
  case "$which" in
    localizer)  # stage 1 of the whole-heart paper's pipeline: find the heart in the whole scan
      "${CLI[@]}" --output "$OUT/whole-heart-localizer" --task whole-heart --network unet \
        --spacing 6 --patch-size 48 --batch-size 2 --samples-per-case 2 --steps 4500 --max-minutes 16 \
        --val-every 250 --train-cases 60 --val-seeds 200000-200003 --fov random \
        --protocols cta:0.25,chest_contrast:0.25,gated_noncontrast:0.25,chest_noncontrast:0.25 \
        --synthseg-fraction 0.2 --seed 101 ;;
    whole-heart)  # stage 2: Dense V-Net on the region of interest, four cosine cycles: the first (0.2.0; stopped
      # by its 24-minute budget at step 2829), then three times 5000 steps at a third of the learning rate, each from
      # the previous weights (0.3.0; 0.4.0 with 40 % non-contrast scans; 0.5.0 on generator 0.2.11's right atria),
      # each chosen over the one before on tuning scans through the whole pipeline (benchmarks/evaluate_models.py
      # --tuning). The shipped cycles ran on generators 0.2, 0.2.5, 0.2.5 and 0.2.11; this script runs all four on
      # the current one.
      WH=(--task whole-heart --network densevnet --spacing 2 --patch-size 48 --batch-size 2 --samples-per-case 2
          --train-cases 60 --fov cardiac --synthseg-fraction 0.1)
      MIX=(--protocols cta:0.35,chest_contrast:0.35,gated_noncontrast:0.15,chest_noncontrast:0.15)
      "${CLI[@]}" --output "$OUT/whole-heart-densevnet-cycle1" "${WH[@]}" "${MIX[@]}" --steps 5000 --max-minutes 24 \
        --val-every 500 --val-seeds 100000-100003 --seed 202
      "${CLI[@]}" --output "$OUT/whole-heart-densevnet-cycle2" "${WH[@]}" "${MIX[@]}" --steps 5000 --max-minutes 40 \
        --lr 3e-4 --val-every 500 --val-seeds 100000-100005 --seed 204 \
        --init-from "$OUT/whole-heart-densevnet-cycle1/model.pt"
      MIX=(--protocols cta:0.3,chest_contrast:0.3,gated_noncontrast:0.2,chest_noncontrast:0.2)
      "${CLI[@]}" --output "$OUT/whole-heart-densevnet-cycle3" "${WH[@]}" "${MIX[@]}" --steps 5000 --max-minutes 40 \
        --lr 3e-4 --val-every 500 --val-seeds 100000-100005 --seed 205 \
        --init-from "$OUT/whole-heart-densevnet-cycle2/model.pt"
      "${CLI[@]}" --output "$OUT/whole-heart-densevnet" "${WH[@]}" "${MIX[@]}" --steps 5000 --max-minutes 30 \
        --lr 3e-4 --val-every 500 --val-seeds 100000-100005 --seed 207 \
        --init-from "$OUT/whole-heart-densevnet-cycle3/model.pt" ;;
    ima-aorta-se-swin)  # the IMA/aorta paper's network, offered beside the default U-Net: SE-CNN and Swin levels
      # alternating, with a stride-2 stem so a step costs 0.27 s on 2 cores (1.39 s without). Two cosine cycles:
      # 15000 steps from random weights (0.1.0, generator 0.2.5; 66 min; its best validation, step 13000), then
      # 7400 steps from those weights at batch 4 on 80 cases (0.2.0, generator 0.2.12; run on a lent H100 with
      # --device cuda in 18 min, 0.12 s a step beside a second run; not run on a CPU, where its batch of 4 makes a
      # step slower than the first cycle's 0.27 s).
      SWIN=("${IMA_DATA[@]}" --network se_swin --network-params '{"stem_stride": 2}')
      "${CLI[@]}" --output "$OUT/ima-aorta-se-swin-cycle1" "${SWIN[@]}" --val-every 500 --steps 15000 \
        --max-minutes 70 --seed 401
      "${CLI[@]}" --output "$OUT/ima-aorta-se-swin" "${SWIN[@]}" --batch-size 4 --train-cases 80 --lr 1e-3 \
        --val-every 600 --steps 7400 --max-minutes 120 --seed 411 \
        --init-from "$OUT/ima-aorta-se-swin-cycle1/model.pt" ;;
    ima-aorta)  # the U-Net, the task's default.
      # Eight cosine cycles, each from the previous one's weights: 4000 steps from random weights, 6000
      # more (0.2.0), 9000 more after generator 0.2.2 moved the IMAs to the sternum's depth, 5000 more
      # after 0.2.3 made them thinner with the lung close behind (0.3.0; stopped at 4400 by its budget),
      # 5000 more after 0.2.4-0.2.5 put them in the chest wall's fat (0.4.0), 5000 + 5000 more after
      # 0.2.6-0.2.8 put the abdominal aorta in front of the spine and bent the body forward below the chest
      # (0.5.0), 5000 more after 0.2.9-0.2.10 ran the IMAs unbroken among intercostal muscle (0.6.0), and
      # 5000 more at a third of the learning rate after 0.2.11 drew the injected veins bright (0.7.0).
      # The shipped model's cycles ran on generators 0.2.1, 0.2.1, 0.2.2, 0.2.3, 0.2.5, 0.2.7, 0.2.8,
      # 0.2.10 and 0.2.11; this script runs all nine on the current one.
      IMA=("${IMA_DATA[@]}" --network unet --val-every 400)
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase1" "${IMA[@]}" --steps 4000 --max-minutes 30 --seed 303
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase2" "${IMA[@]}" --steps 6000 --max-minutes 40 --seed 304 \
        --init-from "$OUT/ima-aorta-unet-phase1/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase3" "${IMA[@]}" --steps 9000 --max-minutes 50 --seed 305 \
        --init-from "$OUT/ima-aorta-unet-phase2/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase4" "${IMA[@]}" --steps 5000 --max-minutes 32 --seed 306 \
        --init-from "$OUT/ima-aorta-unet-phase3/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase5" "${IMA[@]}" --steps 5000 --max-minutes 30 --seed 308 \
        --init-from "$OUT/ima-aorta-unet-phase4/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase6" "${IMA[@]}" --steps 5000 --max-minutes 32 --seed 312 \
        --init-from "$OUT/ima-aorta-unet-phase5/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase7" "${IMA[@]}" --steps 5000 --max-minutes 32 --seed 313 \
        --init-from "$OUT/ima-aorta-unet-phase6/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet-phase8" "${IMA[@]}" --steps 5000 --max-minutes 32 --seed 317 \
        --init-from "$OUT/ima-aorta-unet-phase7/model.pt"
      "${CLI[@]}" --output "$OUT/ima-aorta-unet" "${IMA[@]}" --steps 5000 --max-minutes 24 --seed 319 --lr 3e-4 \
        --init-from "$OUT/ima-aorta-unet-phase8/model.pt" ;;
    *) echo "unknown model $which" >&2; exit 2 ;;
  esac
done
