#!/bin/bash
# DeepSeek-V3 from the Hugging Face hub (FP8 weights, dequantised to bf16)
# into a native checkpoint for `moebench run --load`:
#   MODEL=DeepSeek-V3 SOURCE_CKPT_PATH=/ckpt/hf TARGET_CKPT_PATH=/ckpt/native [TP= PP= EP=] bash scripts/convert_deepseek_v3.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/convert_hf_checkpoint.sh"
convert_hf_checkpoint "DeepSeek-V3"
