#!/usr/bin/env bash
# Regenerates benchmarks/results/<env>/<split>/ (results.json, summary.md, plots):
# meta-trains each env's default config (meta_rl/configs/<env>.yaml) for seeds 0 1 2
# (SEEDS="0 1" overrides), then runs the held-out evaluation on the test and ood splits,
# which trains and caches every run's baselines (pooled PPO, PPO oracle, SB3 PPO, Reptile-PPO,
# MAML++-PPO and the optional encoder-PPO; same env-step budget), two at a time. SkillGraph also
# evaluates the optional recurrent_ppo baseline
# (sb3-contrib RecurrentPPO: pip install -e ".[contrib]"; about 5x slower per env step than SB3 PPO).
# Usage: bash benchmarks/reproduce_results.sh [skill_graph|zpd|spaced_repetition|spaced_repetition_goals ...]
# (default: all)
# Needs the package installed (see README); roughly an hour per env on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds_of() {
  echo "${SEEDS:-0 1 2}"
}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(skill_graph zpd spaced_repetition spaced_repetition_goals)

env_id() {
  case "$1" in
    skill_graph) echo MetaTutor/SkillGraph-v0 ;;
    zpd) echo MetaTutor/ZPD-v0 ;;
    spaced_repetition) echo MetaTutor/SpacedRepetition-v0 ;;
    spaced_repetition_goals) echo MetaTutor/SpacedRepetitionGoals-v0 ;;
    *) echo "unknown env name $1" >&2; return 1 ;;
  esac
}
train() {  # NAME SEED: train, or resume an interrupted run
  local out="runs/$1/seed$2"
  mkdir -p "runs/$1"
  if [ -f "$out/checkpoint.pt" ]; then
    meta-tutor train --out "$out" --resume --no-progress > "$out.log" 2>&1
  else
    meta-tutor train --env "$(env_id "$1")" --seed "$2" --out "$out" --no-progress > "$out.log" 2>&1
  fi
  echo "trained $1 seed $2"
}
methods_of() {  # the default methods and the optional encoder tutors, plus the recurrent baseline on SkillGraph
  case "$1" in
    skill_graph) echo default recurrent_ppo encoder_ppo encoder_ppo_ft encoder_maml_ppo ;;
    *) echo default encoder_ppo encoder_ppo_ft encoder_maml_ppo ;;
  esac
}
export -f env_id train

for name in "${names[@]}"; do
  env_id "$name" > /dev/null
  for s in $(seeds_of "$name"); do echo "$name $s"; done
done | xargs -P 2 -L 1 bash -c 'train "$0" "$1"'

for name in "${names[@]}"; do
  runs=()
  for s in $(seeds_of "$name"); do runs+=("runs/$name/seed$s"); done
  for split in test ood; do
    # shellcheck disable=SC2046 # methods_of prints a word list
    meta-tutor evaluate --checkpoint "${runs[@]}" --split "$split" --n 80 --adapt-steps 3 \
      --workers 2 --methods $(methods_of "$name") --out "benchmarks/results/$name/$split"
  done
done
