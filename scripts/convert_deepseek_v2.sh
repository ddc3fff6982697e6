#!/bin/bash
# DeepSeek-V2 / DeepSeek-V2-Lite from the Hugging Face hub into a native
# checkpoint for `moebench run --load`:
#   MODEL=DeepSeek-V2-Lite SOURCE_CKPT_PATH=/ckpt/hf TARGET_CKPT_PATH=/ckpt/native [TP= PP= EP=] bash scripts/convert_deepseek_v2.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/convert_hf_checkpoint.sh"
convert_hf_checkpoint "DeepSeek-V2 DeepSeek-V2-Lite"
