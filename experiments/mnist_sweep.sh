#!/usr/bin/env bash
# A short sweep of MNIST meta-training settings, run side by side (for choosing the defaults of
# `python -m l2l train mnist`). Each configuration trains for BUDGET seconds with 2 threads, then
# each best optimizer is evaluated on the same 32 test MLPs against tuned Adam and NAG.
#   bash experiments/mnist_sweep.sh OUT BUDGET
set -u
out=${1:-runs/sweep}; budget=${2:-400}
py=${PYTHON:-python3}
mkdir -p "$out"
configs=(
  "paper --meta-lr 1e-3"
  "lr3e-3 --meta-lr 3e-3"
  "b4 --batch-size 4 --meta-lr 1e-3"
  "b4-lr3e-3 --batch-size 4 --meta-lr 3e-3"
  "p5 -p 5 --meta-lr 1e-3"
  "clip1-lr3e-3 --meta-lr 3e-3 --clip-grad 1"
  "unroll10 --unroll 10 --meta-lr 1e-3"
)
for c in "${configs[@]}"; do
  name=${c%% *}; args=${c#* }
  OMP_NUM_THREADS=2 timeout -s INT "$budget" $py -m l2l train mnist --epochs 100000 \
    --validate-every 20 --validation-size 16 --out "$out/$name" --quiet $args \
    > "$out/$name.log" 2>&1 &
done
OMP_NUM_THREADS=2 $py -m l2l evaluate mnist --optimizer sgd --optimizer rmsprop --optimizer adam \
  --optimizer nag --steps 100 --runs 32 --tune-runs 16 --seed 1 --quiet \
  --json "$out/baselines.json" > "$out/baselines.txt" 2>&1 &
wait
for c in "${configs[@]}"; do
  name=${c%% *}
  [ -f "$out/$name/best.pt" ] || continue
  OMP_NUM_THREADS=2 $py -m l2l evaluate mnist --optimizer "lstm:$out/$name" --steps 100 --runs 32 \
    --seed 1 --quiet --json "$out/$name.eval.json" > "$out/$name.eval.txt" 2>&1 &
done
wait
for f in "$out"/*.eval.txt "$out/baselines.txt"; do echo "== $f"; cat "$f"; done
