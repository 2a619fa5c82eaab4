#!/usr/bin/env bash
# Bad input gets exactly one line on stderr starting with "error: ", exit code 1, and leaves no checkpoint or
# partial file behind. Usage: test/test_bad_input.sh [trainer binary, default ./train_gpt2]
set -u
cd "$(dirname "$0")/.."
BIN=${1:-./train_gpt2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0; failed=0
TS=data/tinyshakespeare/tiny_shakespeare_val.bin

# expect_error NAME [args...]: runs $BIN with args and checks the error contract
expect_error() {
    local name="$1"; shift
    rm -rf "$out/o"
    timeout 120 $BIN -x 1 -v 0 -s 0 "$@" > "$out/stdout" 2> "$out/stderr"
    local rc=$?
    local lines=$(wc -l < "$out/stderr")
    local partial=$( (ls "$out/o" 2>/dev/null | grep -E 'model_|state_|DONE_|\.tmp') )
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && head -n 1 "$out/stderr" | grep -q '^error: ' && [ -z "$partial" ]; then
        passed=$((passed+1)); echo "ok   $name: $(cat "$out/stderr")"
    else
        failed=$((failed+1)); echo "FAIL $name: exit $rc, $lines stderr lines, partial files '$partial':"; head -n 5 "$out/stderr"
    fi
}

# fixtures: corrupted copies of a valid shard and of a valid d2 checkpoint (step 0)
./train_gpt2 -e d2 -x 0 -v 0 -s 0 -n 1 -o "$out/ck" > /dev/null 2>&1
CK="$out/ck/model_00000000.bin"
python3 - "$out" "$TS" "$CK" <<'PY'
import struct, sys, os
out, shard, ck = sys.argv[1:4]
def load(path):
    data = open(path, 'rb').read()
    return list(struct.unpack('256i', data[:1024])), data[1024:]
def write(name, header, body):
    open(os.path.join(out, name), 'wb').write(struct.pack('256i', *header) + body)
def variant(name, header, body, **slots):
    h = header[:]
    for k, v in slots.items():
        h[int(k[1:])] = v
    write(name, h, body)
h, body = load(shard)
variant('badmagic.bin', h, body, h0=12345)
variant('badversion.bin', h, body, h1=7)
write('truncated.bin', h, body[:-100])
variant('short.bin', h, body[:200], h2=100)
write('badtoken.bin', h, b'\xff\xff' * h[2])
open(os.path.join(out, 'tiny.bin'), 'wb').write(b'\x00' * 10)
h, body = load(ck)
variant('ck_badmagic.bin', h, body, h0=1)
variant('ck_v2.bin', h, body, h1=2)
write('ck_truncated.bin', h, body[:len(body) // 2])
variant('ck_wrongshape.bin', h, body, h4=3)   # says 3 layers, holds 2
variant('ck_badalpha.bin', h, body, h8=struct.unpack('i', struct.pack('f', 3.0))[0])
PY

expect_error "missing train file"          -e d2 -i "$out/nope.bin" -j $TS -o "$out/o"
expect_error "no file matches the pattern" -e d2 -i "$out/nothing_*.bin" -j $TS -o "$out/o"
expect_error "missing val file"            -e d2 -j "$out/nope_val.bin" -v 1 -o "$out/o"
expect_error "shard with wrong magic"      -e d2 -i "$out/badmagic.bin" -j $TS -o "$out/o"
expect_error "shard with wrong version"    -e d2 -i "$out/badversion.bin" -j $TS -o "$out/o"
expect_error "truncated shard"             -e d2 -i "$out/truncated.bin" -j $TS -o "$out/o"
expect_error "shard shorter than B*T+1"    -e d2 -i "$out/short.bin" -j $TS -o "$out/o"
expect_error "file smaller than a header"  -e d2 -i "$out/tiny.bin" -j $TS -o "$out/o"
expect_error "token id out of range"       -e d2 -i "$out/badtoken.bin" -j $TS -o "$out/o"
expect_error "missing checkpoint"          -e "$out/nope_model.bin" -o "$out/o"
expect_error "checkpoint wrong magic"      -e "$out/ck_badmagic.bin" -o "$out/o"
expect_error "checkpoint old version"      -e "$out/ck_v2.bin" -o "$out/o"
expect_error "truncated checkpoint"        -e "$out/ck_truncated.bin" -o "$out/o"
expect_error "checkpoint of the wrong shape" -e "$out/ck_wrongshape.bin" -o "$out/o"
expect_error "checkpoint with alpha 3"     -e "$out/ck_badalpha.bin" -o "$out/o"
expect_error "alpha above 2"               -e d2 -A 2.5 -o "$out/o"
expect_error "alpha below 1"               -e d2 -A 0.99 -o "$out/o"
expect_error "alpha nan"                   -e d2 -A nan -o "$out/o"
expect_error "anneal start out of range"   -e d2 -A0 0.5 -An 10 -o "$out/o"
expect_error "-A0 without -An"             -e d2 -A0 1.01 -o "$out/o"
expect_error "T above max T"               -e d2 -t 2048 -o "$out/o"
expect_error "unknown flag"                -e d2 -Q 1 -o "$out/o"
expect_error "flag without a value"        -e d2 -b
expect_error "non-numeric value"           -e d2 -b four -o "$out/o"
expect_error "zero batch size"             -e d2 -b 0 -o "$out/o"
expect_error "unknown lr schedule"         -e d2 -k step -o "$out/o"
expect_error "final lr fraction above 1"   -e d2 -q 1.5 -o "$out/o"
expect_error "bad model descriptor"        -e x12 -o "$out/o"
expect_error "-d not a multiple of B*T"    -e d2 -d 1000 -o "$out/o"
expect_error "checkpointing without -o"    -e d2 -n 5
expect_error "unprepared dataset name"     -e d2 -i fineweb -o "$out/o"
if [ "$BIN" = "./train_gpt2" ]; then
    expect_error "GPU-only flag on the CPU trainer" -e d2 -r 0 -o "$out/o"
fi
# a resume whose state file is corrupt: DONE_ exists, state truncated
mkdir -p "$out/r" && cp "$out/ck/"* "$out/r/" && truncate -s 2000 "$out/r/state_00000000_00000.bin"
rm -rf "$out/o"; cp -r "$out/r" "$out/o"
timeout 120 $BIN -e d2 -x 1 -v 0 -s 0 -o "$out/o" -y 1 > "$out/stdout" 2> "$out/stderr"; rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l < "$out/stderr")" -eq 1 ] && grep -q '^error: ' "$out/stderr" && [ ! -e "$out/o/DONE_00000001" ]; then
    passed=$((passed+1)); echo "ok   resume from a truncated state file: $(cat "$out/stderr")"
else
    failed=$((failed+1)); echo "FAIL resume from a truncated state file: exit $rc"; cat "$out/stderr"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
