#!/usr/bin/env bash
# The device check of issue 27 in one run (about 8-9 minutes on one H100/H200, at most TOTAL_S=530 s:
# give the device tool timeout_s 590): one JSON line per figure.
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
# the whole run stays inside TOTAL_S seconds (the device tool's limit is 600): each part gets its own
# limit or what is left, whichever is less, and a part with under 20 s left is skipped
deadline=$((SECONDS + ${TOTAL_S:-530}))
[[ -n "$smoke" ]] && deadline=$((SECONDS + ${TOTAL_S:-3600}))
part() {  # each part in its own process: a failure or an OOM in one leaves the others' figures
    local name="$1" limit="$2"; shift 2
    local t0=$SECONDS left=$((deadline - SECONDS))
    if (( left < 20 )); then
        echo "{\"figure\": \"part skipped\", \"part\": \"$name\", \"why\": \"time budget spent\"}" | tee -a "$log"
        return 0
    fi
    [[ -n "$smoke" ]] && limit=$left
    (( limit > left )) && limit=$left
    timeout "$limit" "$@" 2>"$out/$name.err" | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "{\"figure\": \"part exit\", \"part\": \"$name\", \"rc\": $rc, \"s\": $((SECONDS - t0))}" | tee -a "$log"
    [[ $rc -ne 0 ]] && tail -n 5 "$out/$name.err" >&2
    return 0
}
part kernel 90 "$py" benchmarks/gpu_check.py kernel $smoke
part dit 90 "$py" benchmarks/gpu_check.py dit --save "$out/ours_dit" $smoke
# ---- upstream's own model code (fp8 + compile timing, and the bf16 DiT call against ours) -------
if [[ -n "$upstream" && -f benchmarks/gpu_upstream.py ]]; then
    # our package must be off the path (both are called liveavatar); UPSTREAM_PYTHON(PATH): an interpreter
    # with diffusers and einops when the default one lacks them
    part upstream 240 env PYTHONPATH="${UPSTREAM_PYTHONPATH:-}" "${UPSTREAM_PYTHON:-$py}" benchmarks/gpu_upstream.py \
        "$upstream" --ours "$out/ours_dit" --clips 1 $smoke  # one clip: no recompile at a clip boundary
elif [[ -n "$upstream" ]]; then
    echo '{"figure": "upstream", "skipped": "benchmarks/gpu_upstream.py is not in this tree"}' | tee -a "$log"
fi
# ---- every memory mode, today's path against kernel + overlap (the longest part: what time is left)
part modes 300 "$py" benchmarks/gpu_check.py modes --clips "$clips" $smoke
# ---- multi-GPU emulation (helper multigpu's script), run when present -----------------------------
if [[ -f benchmarks/gpu_emulate_tpp.py ]]; then
    part emulate_tpp 120 "$py" benchmarks/gpu_emulate_tpp.py $smoke
fi
