#!/usr/bin/env bash
# Resume is bit-exact: a run interrupted after its step-4 checkpoint and resumed with -y 1 ends with the same
# model and optimizer state files (byte for byte) and logs the same losses as an uninterrupted run.
# Usage: test/test_resume.sh [trainer binary, default ./train_gpt2]
# Also checks the checkpoint files are complete (no *.tmp left), the DONE_ protocol, and -nk rolling deletion.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
say() { echo "$1 $2"; [ "$1" = ok ] || status=1; }
BIN=${1:-./train_gpt2}
flags="-e d2 -A 1.5 -A0 1.1 -An 6 -x 8 -b 4 -t 32 -l 1e-3 -d 256 -v 4 -m 2 -s 0 -n 4"
$BIN $flags -o "$out/a" > "$out/a.txt" 2>&1 || { echo "FAIL uninterrupted run"; tail "$out/a.txt"; exit 1; }
# the interrupted run: run to the end, then remove everything after step 4 as if it had been killed there
$BIN $flags -o "$out/b" > "$out/b.txt" 2>&1 || { echo "FAIL first half"; exit 1; }
rm "$out/b/DONE_00000008" "$out/b/model_00000008.bin" "$out/b/state_00000008_00000.bin"
awk -F'[: ]' '$2+0 <= 4 || !/^s:/' "$out/b/main.log" | awk -F'[: ]' '!($3=="trl" && $2+0 >= 4)' > "$out/b/log" && mv "$out/b/log" "$out/b/main.log"
echo "partial" > "$out/b/model_00000008.bin.tmp"    # a half-written file left by the crash
$BIN $flags -o "$out/b" -y 1 > "$out/b2.txt" 2>&1 || { echo "FAIL resumed run"; tail "$out/b2.txt"; exit 1; }
grep -q "resumed from .*model_00000004.bin (step 4)" "$out/b2.txt" && say ok "resumed from the step-4 checkpoint" || say FAIL "did not resume from step 4"
cmp -s "$out/a/model_00000008.bin" "$out/b/model_00000008.bin" && say ok "final model file is byte-identical" || say FAIL "final model differs"
cmp -s "$out/a/state_00000008_00000.bin" "$out/b/state_00000008_00000.bin" && say ok "final state file is byte-identical" || say FAIL "final state differs"
diff <(grep trl "$out/a/main.log") <(grep trl "$out/b/main.log") > /dev/null && say ok "train losses logged identically" || say FAIL "train losses differ"
[ -z "$(ls "$out/a" | grep '\.tmp$')" ] && say ok "no temp files left by a clean run" || say FAIL "temp files left"
# rolling deletion: -n 2 -nk 2 keeps the last two checkpoints (6 and 8), -nm 4 also keeps 4
$BIN -e d2 -x 8 -b 4 -t 32 -v 0 -s 0 -n 2 -nk 2 -nm 4 -o "$out/c" > "$out/c.txt" 2>&1
ls "$out/c" | grep -E '^DONE_' | tr '\n' ' ' | grep -qx 'DONE_00000004 DONE_00000006 DONE_00000008 ' && say ok "-nk 2 -nm 4 keeps steps 4, 6, 8" || { say FAIL "-nk/-nm kept: $(ls "$out/c" | tr '\n' ' ')"; }
exit $status
