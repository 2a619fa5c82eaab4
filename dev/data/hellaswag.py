#!/usr/bin/env python3
"""
hellaswag.py: writes the HellaSwag validation set in llm.c's multiple-choice eval format.

    python3 dev/data/hellaswag.py            # -> data/hellaswag/hellaswag_val.bin (10042 examples)

Input: ${SHARED_DATA:-<repo>/../shared/data}/hellaswag/hellaswag_val_derived.jsonl, one example per line with
fields idx, activity_label, ctx, label, endings[4] (see shared/data/PROVENANCE.md: llama.cpp's preprocessing of
the original val set, so WikiHow examples lack the [title]/[step] markers of the original).

Rendering follows llm.c's dev/data/hellaswag.py: the context is the example's `ctx` field alone (llm.c does not
prepend the activity label; --with-activity-label does, as the Eleuther harness does), each of the 4 endings is
tokenized with a leading space, tokens are GPT-2 (tiktoken, built locally from the gpt2 files).

File format (conventions doc section 3.6): header 256 x int32 = [20240522, 1, num_examples, longest example in
bytes, 0...]; then per example a stream of uint16: 65535, the example's size in bytes (these uint16s included),
example index, label, 4, len(ctx) + ctx tokens, then for each ending len + tokens.
"""
import argparse
import array
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_local_encoding import REPO, gpt2_local_encoding  # noqa: E402

EVAL_MAGIC = 20240522
EVAL_VERSION = 1


def default_input():
    shared = os.environ.get("SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    return os.path.join(shared, "hellaswag", "hellaswag_val_derived.jsonl")


def load_examples(path):
    examples = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            if len(ex["endings"]) != 4 or ex["label"] not in (0, 1, 2, 3):
                raise ValueError(f"{path}:{lineno}: expected 4 endings and a label in 0..3")
            examples.append(ex)
    return examples


def render_example(ex, enc, with_activity_label=False):
    """(ctx_tokens, [ending_tokens x 4], label) as llm.c builds them."""
    ctx = ex["ctx"]
    if with_activity_label:
        ctx = ex["activity_label"] + ": " + ctx
    ctx_tokens = enc.encode_ordinary(ctx)
    ending_tokens = [enc.encode_ordinary(" " + e) for e in ex["endings"]]
    return ctx_tokens, ending_tokens, int(ex["label"])


def write_evalfile(path, rendered):
    """rendered: list of (ctx_tokens, ending_tokens, label). Writes atomically (temp file + rename)."""
    assert len(rendered) < 2**16, "too many examples for uint16 indices"
    stream = array.array("H")
    longest = 0
    for idx, (ctx_tokens, ending_tokens, label) in enumerate(rendered):
        ex = [65535, 0, idx, label, len(ending_tokens), len(ctx_tokens)] + list(ctx_tokens)
        for toks in ending_tokens:
            ex.append(len(toks))
            ex.extend(toks)
        assert all(0 <= t < 65535 for t in ex[2:]), "token or field does not fit uint16"
        nbytes = 2 * len(ex)
        assert nbytes < 2**16, f"example {idx} is too large"
        ex[1] = nbytes
        longest = max(longest, nbytes)
        stream.extend(ex)
    header = [0] * 256
    header[0], header[1], header[2], header[3] = EVAL_MAGIC, EVAL_VERSION, len(rendered), longest
    if sys.byteorder != "little":
        stream.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(stream.tobytes())
    os.replace(tmp, path)
    return longest


def read_evalfile(path):
    """Parses an eval .bin back: (header list, [dict(index, label, ctx, endings)]). Raises ValueError if malformed."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 1024 or (len(data) - 1024) % 2:
        raise ValueError(f"{path}: bad size")
    header = list(struct.unpack("<256i", data[:1024]))
    if header[0] != EVAL_MAGIC or header[1] != EVAL_VERSION:
        raise ValueError(f"{path}: bad magic/version {header[:2]}")
    s = array.array("H")
    s.frombytes(data[1024:])
    if sys.byteorder != "little":
        s.byteswap()
    out, pos, longest = [], 0, 0
    while pos < len(s):
        if s[pos] != 65535:
            raise ValueError(f"{path}: missing example delimiter at uint16 {pos}")
        nbytes, index, label, ncomp = s[pos + 1], s[pos + 2], s[pos + 3], s[pos + 4]
        q = pos + 5
        n = s[q]
        ctx = list(s[q + 1:q + 1 + n])
        q += 1 + n
        endings = []
        for _ in range(ncomp):
            n = s[q]
            endings.append(list(s[q + 1:q + 1 + n]))
            q += 1 + n
        if 2 * (q - pos) != nbytes:
            raise ValueError(f"{path}: example {index}: byte count {nbytes} != {2 * (q - pos)}")
        longest = max(longest, nbytes)
        out.append({"index": index, "label": label, "ctx": ctx, "endings": endings})
        pos = q
    if len(out) != header[2] or longest != header[3]:
        raise ValueError(f"{path}: header says {header[2]} examples / longest {header[3]}, "
                         f"file has {len(out)} / {longest}")
    return header, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=default_input(), help="hellaswag_val_derived.jsonl")
    ap.add_argument("--out", default=os.path.join(REPO, "data", "hellaswag", "hellaswag_val.bin"))
    ap.add_argument("--gpt2-dir", default=None, help="folder with encoder.json and vocab.bpe")
    ap.add_argument("--with-activity-label", action="store_true",
                    help="context = activity_label + ': ' + ctx (not llm.c's choice)")
    args = ap.parse_args()
    if not os.path.isfile(args.input):
        sys.exit(f"error: {args.input} not found (set SHARED_DATA or --input)")
    enc = gpt2_local_encoding(args.gpt2_dir)
    examples = load_examples(args.input)
    for i, ex in enumerate(examples):
        if ex.get("idx", i) != i:
            sys.exit(f"error: {args.input}: example {i} has idx {ex.get('idx')} (expected the row number)")
    rendered = [render_example(ex, enc, args.with_activity_label) for ex in examples]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    longest = write_evalfile(args.out, rendered)
    print(f"wrote {args.out}: {len(rendered)} examples, longest {longest} bytes, "
          f"{os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
