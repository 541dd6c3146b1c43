#!/usr/bin/env bash
# The device check of issue 27 in one run (under 8 minutes on one H100/H200): one JSON line per figure.
#
#   benchmarks/gpu_check.sh [--cpu-smoke] [UPSTREAM_DIR]
#
# UPSTREAM_DIR: a checkout of Alibaba-Quark/LiveAvatar (carried to the device; nothing else is fetched).
# Writes every line to stdout and to ${OUT:-/tmp}/gpu_check.jsonl. --cpu-smoke: tiny shapes on any machine.
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=""
if [[ "${1:-}" == "--cpu-smoke" ]]; then smoke="--cpu-smoke"; shift; fi
upstream="${1:-}"
out="${OUT:-/tmp}"
log="$out/gpu_check.jsonl"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
clips=2; [[ -n "$smoke" ]] && clips=1
: >"$log"
part() {  # each part in its own process: a failure or an OOM in one leaves the others' figures
    local name="$1"; shift
    local t0=$SECONDS
    timeout "${PART_TIMEOUT:-300}" "$@" 2>"$out/$name.err" | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "{\"figure\": \"part exit\", \"part\": \"$name\", \"rc\": $rc, \"s\": $((SECONDS - t0))}" | tee -a "$log"
    [[ $rc -ne 0 ]] && tail -n 5 "$out/$name.err" >&2
    return 0
}
part kernel "$py" benchmarks/gpu_check.py kernel $smoke
part modes "$py" benchmarks/gpu_check.py modes --clips "$clips" $smoke
part dit "$py" benchmarks/gpu_check.py dit --save "$out/ours_dit" $smoke
# ---- upstream's own model code (fp8 + compile timing, and the bf16 DiT call against ours) -------
if [[ -n "$upstream" && -f benchmarks/gpu_upstream.py ]]; then
    # our package must be off the path (both are called liveavatar); UPSTREAM_PYTHON(PATH): an interpreter
    # with diffusers and einops when the default one lacks them
    part upstream env PYTHONPATH="${UPSTREAM_PYTHONPATH:-}" "${UPSTREAM_PYTHON:-$py}" benchmarks/gpu_upstream.py \
        "$upstream" --ours "$out/ours_dit" --clips 1 $smoke  # one clip: no recompile at a clip boundary
elif [[ -n "$upstream" ]]; then
    echo '{"figure": "upstream", "skipped": "benchmarks/gpu_upstream.py is not in this tree"}' | tee -a "$log"
fi
# ---- multi-GPU emulation (helper multigpu's script), run when present -----------------------------
if [[ -f benchmarks/gpu_emulate_tpp.py ]]; then
    part emulate_tpp "$py" benchmarks/gpu_emulate_tpp.py $smoke
fi
