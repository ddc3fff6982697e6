# Sourced by convert_deepseek_v2.sh and convert_deepseek_v3.sh: checks the
# environment and runs `moebench convert hf-to-native`.
#   convert_hf_checkpoint "<allowed MODEL names>"
# Environment: MODEL, SOURCE_CKPT_PATH (Hugging Face directory),
# TARGET_CKPT_PATH (native checkpoint root), TP, PP, EP (default 1).
convert_hf_checkpoint() {
  local allowed=$1
  local script
  script=$(basename "$0")
  if [[ " $allowed " != *" ${MODEL:-} "* ]]; then
    echo "$script: MODEL='${MODEL:-}' is not one of: $allowed; set MODEL to one of them" >&2
    return 2
  fi
  if [[ -z "${SOURCE_CKPT_PATH:-}" || ! -f "$SOURCE_CKPT_PATH/config.json" ]]; then
    echo "$script: SOURCE_CKPT_PATH='${SOURCE_CKPT_PATH:-}' is not a Hugging Face checkpoint directory (no config.json); download $MODEL and point SOURCE_CKPT_PATH at it" >&2
    return 2
  fi
  if [[ -z "${TARGET_CKPT_PATH:-}" ]]; then
    echo "$script: TARGET_CKPT_PATH is not set; set it to the directory the converted checkpoint goes to" >&2
    return 2
  fi
  source "$(dirname "${BASH_SOURCE[0]}")/moebench_binary.sh"
  "$MOEBENCH_BIN" convert hf-to-native --load "$SOURCE_CKPT_PATH" --save "$TARGET_CKPT_PATH" \
    --tp "${TP:-1}" --pp "${PP:-1}" --ep "${EP:-1}"
}
