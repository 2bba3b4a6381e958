#!/usr/bin/env bash
# Issue 7's GPU figures in one go: the stage-2 trainer and beam-5 captioning at the paper's
# vitg-opt2.7b shapes, each variant next to the plain baseline, each step under its own time
# limit so that one slow step cannot eat the others' time.
#
#   bash benchmarks/paper_scale.sh [OUT] [PYTHON]
#
# PRESET=tiny makes it a CPU dry run; STEPS="train generate" runs only those steps (all of
# them take up to 16 minutes: where one command may run for 10, run them in two goes).
# Step "loops" times the one training loop against the loops before it (benchmarks/loop_speed.py):
# OLD names a folder holding the library at 999c2b6 (git archive 999c2b6 facecap_lib), for a
# machine without the repository's history; without it, git provides it.
# Writes OUT/<step>.json and OUT/<step>.log (default OUT: build/benchmarks).
set -u
out=${1:-build/benchmarks}
python=${2:-python3}
preset=${PRESET:-vitg-opt2.7b}
steps=${STEPS:-train train-batch48 generate generate-large train-checkpointing}
mkdir -p "$out"

step() {  # step NAME SECONDS SCRIPT ARGS...
    local name=$1 limit=$2
    shift 2
    case " $steps " in *" $name "*) ;; *) return ;; esac
    echo "== $name (at most $limit s)"
    timeout "$limit" "$python" "$@" --preset "$preset" --json "$out/$name.json" 2>&1 |
        grep --line-buffered -v -i "warn" | tee "$out/$name.log"
}

# The trainer reads its losses at log lines only; logging every 3 steps, as a real run does
# every 50, keeps the host from waiting for the GPU at every step.
step train 240 benchmarks/train_throughput.py --batch 32 --tokens 64 --warmup 3 --steps 6 \
    --log-every 3 --variants plain,bf16-foreach,bf16,bf16-compile,model-only \
    --profile bf16 --profile-steps 3
step train-batch48 200 benchmarks/train_throughput.py --batch 48 --tokens 64 --warmup 3 \
    --steps 6 --log-every 3 --variants bf16,model-only,bf16-compile
step generate 120 benchmarks/generate_throughput.py --images 128 --tokens 60 \
    --variants plain@32,bf16-dynamic@32,bf16-dynamic@128,bf16@128
step generate-large 300 benchmarks/generate_throughput.py --images 1280 --tokens 60 \
    --variants bf16-dynamic@256,bf16@256,bf16@320,bf16-compile@256 --profile bf16@256 \
    --check-greedy 16
old=${OLD:+--old-library $OLD}
step loops 240 benchmarks/loop_speed.py $old --batch 32 --tokens 64 --warmup 3 --steps 6 \
    --log-every 3 --rounds 1
step train-lm16 200 benchmarks/train_throughput.py --batch 32 --tokens 64 --warmup 3 --steps 6 \
    --log-every 3 --variants bf16,bf16-lm16,model-only --profile bf16-lm16 --profile-steps 3
step train-checkpointing 100 benchmarks/train_throughput.py --batch 32 --tokens 64 --warmup 3 \
    --steps 6 --log-every 3 --variants bf16-ckpt
