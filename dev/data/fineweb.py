#!/usr/bin/env python3
"""
fineweb.py: downloads FineWeb (or FineWeb-Edu) from the Hugging Face hub and writes llm.c data shards.
Needs internet plus `pip install datasets tiktoken`. (Cannot run on the project's offline machines; the shard
writer below is tested offline by test/test_fineweb_writer.py.)

    python3 dev/data/fineweb.py                      # FineWeb sample-10BT     -> data/fineweb10B/
    python3 dev/data/fineweb.py --edu                # FineWeb-Edu sample-10BT -> data/edu_fineweb10B/
    python3 dev/data/fineweb.py -v 100B              # sample-100BT            -> data/fineweb100B/
    python3 dev/data/fineweb.py --shards 3           # stop after 3 shards (val + 2 train), streaming only that much

Output, as llm.c: every document prefixed with EOT (50256), the token stream cut into shards of --shard-size tokens
(default 1e8; the last shard holds the rest); shard 0 is {name}_val_000000.bin, shard k >= 1 is
{name}_train_{k:06d}.bin, name = fineweb or edu_fineweb. Shard file: 256 x int32 header [20240520, 1, ntok, 0...]
then ntok uint16 tokens, written atomically (temp file + rename).
"""
import argparse
import array
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_local_encoding import EOT, REPO, default_gpt2_dir, gpt2_local_encoding  # noqa: E402

try:  # only needed to download; the writer functions work without it
    import datasets  # noqa: F401
except ImportError:
    datasets = None

SHARD_MAGIC = 20240520
SHARD_VERSION = 1


def write_datafile(path, tokens):
    """One llm.c shard: header + uint16 tokens. tokens: a sequence of ints < 2**16. Atomic (temp file + rename)."""
    toks = tokens if isinstance(tokens, array.array) and tokens.typecode == "H" else array.array("H", tokens)
    assert len(toks) < 2**31, "too many tokens for one shard"
    header = [0] * 256
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, len(toks)
    if sys.byteorder != "little":
        toks = array.array("H", toks)
        toks.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(toks.tobytes())
    os.replace(tmp, path)


def shard_path(out_dir, name, index):
    split = "val" if index == 0 else "train"
    return os.path.join(out_dir, f"{name}_{split}_{index:06d}.bin")


def tokenize_doc(text, enc):
    """[EOT] + GPT-2 tokens of one document."""
    return [EOT] + enc.encode_ordinary(text)


def write_shards(token_docs, out_dir, name, shard_size=10**8, max_shards=None, log=print):
    """
    Cuts a stream of tokenized documents (each already starting with EOT) into shards and writes them.
    A document that does not fit the current shard continues in the next one. Stops after max_shards shards if
    given (the last one is then full). Returns the list of (path, ntokens) written.
    """
    assert shard_size >= 1
    os.makedirs(out_dir, exist_ok=True)
    written = []
    buf = array.array("H")
    for toks in token_docs:
        pos = 0
        while pos < len(toks):
            take = min(shard_size - len(buf), len(toks) - pos)
            buf.extend(toks[pos:pos + take])
            pos += take
            if len(buf) == shard_size:
                path = shard_path(out_dir, name, len(written))
                write_datafile(path, buf)
                written.append((path, len(buf)))
                log(f"wrote {path} ({len(buf)} tokens)")
                buf = array.array("H")
                if max_shards is not None and len(written) >= max_shards:
                    return written
    if len(buf) > 0:
        path = shard_path(out_dir, name, len(written))
        write_datafile(path, buf)
        written.append((path, len(buf)))
        log(f"wrote {path} ({len(buf)} tokens)")
    return written


def _encoding():
    if os.path.isfile(os.path.join(default_gpt2_dir(), "encoder.json")):
        return gpt2_local_encoding()
    import tiktoken
    return tiktoken.get_encoding("gpt2")


_ENC = None


def _tokenize_worker(text):
    global _ENC
    if _ENC is None:
        _ENC = _encoding()
    toks = tokenize_doc(text, _ENC)
    return array.array("H", toks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edu", action="store_true", help="FineWeb-Edu instead of FineWeb")
    ap.add_argument("-v", "--version", choices=["10B", "100B"], default="10B", help="sample-10BT or sample-100BT")
    ap.add_argument("-s", "--shard-size", type=float, default=1e8, help="tokens per shard")
    ap.add_argument("--shards", type=int, default=None, help="stop after this many shards (val counts as one)")
    ap.add_argument("--out-dir", default=None, help="default data/fineweb10B, data/edu_fineweb10B, ...")
    ap.add_argument("--procs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="tokenizer processes")
    args = ap.parse_args()
    if datasets is None:
        sys.exit("error: the `datasets` package is missing: pip install datasets tiktoken")
    shard_size = int(args.shard_size)
    if shard_size < 1 or shard_size != args.shard_size:
        sys.exit("error: --shard-size must be a whole number >= 1")
    if args.shards is not None and args.shards < 1:
        sys.exit("error: --shards must be >= 1")
    name = "edu_fineweb" if args.edu else "fineweb"
    out_dir = args.out_dir or os.path.join(REPO, "data", f"{name}{args.version}")
    repo_id = "HuggingFaceFW/fineweb-edu" if args.edu else "HuggingFaceFW/fineweb"
    remote = f"sample-{args.version}T"
    ds = datasets.load_dataset(repo_id, name=remote, split="train", streaming=True)
    texts = (row["text"] for row in ds)
    if args.procs > 1:
        import multiprocessing as mp
        with mp.Pool(args.procs) as pool:
            write_shards(pool.imap(_tokenize_worker, texts, chunksize=16), out_dir, name, shard_size, args.shards)
            pool.terminate()  # with --shards the stream is left unfinished
    else:
        write_shards(map(_tokenize_worker, texts), out_dir, name, shard_size, args.shards)


if __name__ == "__main__":
    main()
