#!/usr/bin/env bash
# Throughput of `moebench preprocess`: generates a deterministic ~100 MB JSONL
# of English-like text (seeded draws from a word list, Zipf-weighted), tokenizes
# it with --workers 2 and prints MB/s and tokens/s with the command, commit and
# CPU, for docs/benchmarks.md.
#
# Usage: bench/preprocess_throughput.sh <moebench binary> [tokenizer.json]
#   tokenizer: default tests/fixtures/tokenizers/qwen3/tokenizer.json when
#   present (HuggingFaceTokenizer); without one, the text is NullTokenizer ids.
# Environment: SIZE_MB (100), WORKERS (2), SCRATCH (where the corpus is kept
#   between runs; default $TMPDIR/moebench_preprocess_bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
moebench=$(realpath "${1:?usage: preprocess_throughput.sh <moebench binary> [tokenizer.json]}")
tokenizer=${2:-$root/tests/fixtures/tokenizers/qwen3/tokenizer.json}
size_mb=${SIZE_MB:-100}
workers=${WORKERS:-2}
scratch=${SCRATCH:-${TMPDIR:-/tmp}/moebench_preprocess_bench}
mkdir -p "$scratch"

if [[ -f $tokenizer ]]; then
  kind=words tokenizer_flags=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$tokenizer")
else
  echo "no tokenizer file at $tokenizer: NullTokenizer on integer text" >&2
  kind=ids tokenizer_flags=(--tokenizer-type NullTokenizer --vocab-size 50000)
fi
input=$scratch/corpus_${kind}_${size_mb}MB.jsonl

if [[ ! -s $input ]]; then
  echo "generating $input ..." >&2
  python3 - "$input" "$size_mb" "$kind" <<'PY'
import json, random, sys
path, size_mb, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(1234)
words = """the of and to a in is that for it as was with be by on not he this are or his from at which but have
an they you were her she there been one all we their has would when if so no what will more up out can into than
them other some time could only these two may first then do any like my now over such our man me even most made
after also did many before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go came right used take
three states himself few house use during without again place american around however home small found thought went
say part once general high upon school every does got united left number course war until always away something fact
though water less public put think almost hand enough far took head yet government system better set told nothing
night end why called didn find going look asked later knew point next program city business give group toward young
days let room president side social given present several order national possible rather second face per among form
important often things looked early white case large need big four within felt children along saw best church ever
least power development light thought seemed family interest want members others mind country area done turned
although open problem sense certain different kind began thus help means whole itself voice river market history""".split()
weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf, as word frequencies roughly are
target, written = size_mb * 1_000_000, 0
with open(path, "w") as out:
    doc = 0
    while written < target:
        sentences = []
        for _ in range(rng.randint(3, 60)):
            if kind == "ids":
                sentences.append(" ".join(str(rng.randrange(50000)) for _ in range(rng.randint(5, 30))))
            else:
                chosen = rng.choices(words, weights, k=rng.randint(5, 30))
                sentences.append(" ".join(chosen).capitalize() + rng.choice([".", ".", ".", "?", "!"]))
        line = json.dumps({"id": doc, "text": " ".join(sentences)}) + "\n"
        out.write(line)
        written += len(line)
        doc += 1
PY
fi

prefix=$scratch/out
command=("$moebench" preprocess --input "$input" --output-prefix "$prefix" "${tokenizer_flags[@]}" --append-eod
         --workers "$workers" --log-interval 100000)
summary=$("${command[@]}" | grep '^preprocess:')
rm -f "$prefix"_text_document.bin "$prefix"_text_document.idx

echo "$summary"
echo "command: ${command[*]}"
echo "input: $(($(stat -c %s "$input") / 1000000)) MB ($kind); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown);" \
     "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$summary" | sed -E 's/.*: ([0-9.]+) MB\/s, ([0-9]+) tokens\/s.*/MB\/s: \1  tokens\/s: \2/'
