# Sourced by the benchmarking scripts: sets MOEBENCH_BIN to the built binary,
# building it first when it is missing.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOEBENCH_BIN=${MOEBENCH_BIN:-$root/build/moebench}
if [[ ! -x "$MOEBENCH_BIN" ]]; then
  echo "moebench is not built yet; running scripts/setup.sh" >&2
  bash "$root/scripts/setup.sh" >&2
fi
export MOEBENCH_CONFIG_DIR=${MOEBENCH_CONFIG_DIR:-$root/configs}
