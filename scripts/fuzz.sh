#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [extra libFuzzer flags]: build the clang+libFuzzer+ASan+UBSan target and
# fuzz the decoder, seeded with the golden frames of docs/protocol.md. Default 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}; shift || true
bash scripts/build.sh fuzz fuzz_decode
corpus=build/fuzz/corpus
mkdir -p "$corpus"
# seeds: each golden frame in every mode, and the whole conversation as one stream
python3 - "$corpus" <<'PY'
import re, sys, pathlib
doc = pathlib.Path("docs/protocol.md").read_text()
frames = [bytes.fromhex(" ".join(l.split("#")[0] for l in b.splitlines()))
          for b in re.findall(r"<!-- golden:\w+ -->\n```hex\n(.*?)```", doc, re.S)]
out = pathlib.Path(sys.argv[1])
for mode in range(4):
    for i, f in enumerate(frames):
        (out / f"seed-{mode}-{i}").write_bytes(bytes([mode]) + f)
    (out / f"seed-{mode}-stream").write_bytes(bytes([mode]) + b"".join(frames))
PY
exec build/fuzz/tests/fuzz/fuzz_decode "$corpus" -max_total_time="$secs" -max_len=70000 -print_final_stats=1 "$@"
