#!/usr/bin/env bash
# Issue 7's GPU figures in one go: the stage-2 trainer and beam-5 captioning at the paper's
# vitg-opt2.7b shapes, each variant next to the plain baseline, most important first, each step
# under its own time limit so that one slow step cannot eat the others' time.
#
#   bash benchmarks/paper_scale.sh [OUT] [PYTHON]      (PRESET=tiny for a CPU dry run)
#
# Writes OUT/<step>.json and OUT/<step>.log (default OUT: build/benchmarks).
set -u
out=${1:-build/benchmarks}
python=${2:-python3}
preset=${PRESET:-vitg-opt2.7b}
mkdir -p "$out"

step() {  # step NAME SECONDS SCRIPT ARGS...
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most $limit s)"
    timeout "$limit" "$python" "$@" --preset "$preset" --json "$out/$name.json" 2>&1 |
        grep --line-buffered -v -i "warn" | tee "$out/$name.log"
}

step train 200 benchmarks/train_throughput.py --batch 32 --tokens 64 --steps 6 --warmup 2 \
    --variants plain,bf16-foreach,bf16,model-only --profile bf16
step generate 120 benchmarks/generate_throughput.py --images 128 --tokens 60 \
    --variants plain@32,bf16@32,bf16@128
step generate-compiled 150 benchmarks/generate_throughput.py --images 128 --tokens 60 \
    --variants bf16-compile@128 --check-greedy 16
step train-compiled 100 benchmarks/train_throughput.py --batch 32 --tokens 64 --steps 6 \
    --warmup 3 --variants bf16-compile,bf16-ckpt
