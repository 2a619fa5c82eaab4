#!/usr/bin/env python3
"""
test_fineweb_writer.py: offline test of dev/data/fineweb.py's shard writer (the download part needs internet and
the `datasets` package; the module must import without it).

    python3 test/test_fineweb_writer.py          # prints "N passed, M failed"; also runs under pytest

Checks, on local text (Tiny Shakespeare paragraphs as documents): llm.c shard headers, EOT before every document,
tokens equal to tiktoken's (built locally), val/train naming and sizes, --shards limiting, atomic writes, and that
build/tokenize (if built) writes byte-identical shards from the same documents.
"""
import array
import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "dev", "data"))
import fineweb  # noqa: E402
from gpt2_local_encoding import EOT, default_gpt2_dir, gpt2_local_encoding  # noqa: E402
from shard_util import read_shard  # noqa: E402

SHARED = os.environ.get("SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
SHAKESPEARE = os.path.join(SHARED, "tinyshakespeare", "input.txt")
TOOL = os.path.join(REPO, "build", "tokenize")

_TMP = tempfile.mkdtemp(prefix="test_fineweb_")
atexit.register(shutil.rmtree, _TMP, True)


def tmpdir(name):
    d = os.path.join(_TMP, name)
    os.makedirs(d, exist_ok=True)
    return d


def docs():
    with open(SHAKESPEARE, encoding="utf-8") as f:
        paragraphs = f.read().split("\n\n")[:600]
    return paragraphs + ["", "caf\u00e9 \U0001f600 it's <|endoftext|> 42", "\u4f60\u597d\u4e16\u754c"]




def expected_stream():
    enc = gpt2_local_encoding()
    out = []
    for d in docs():
        out.append(EOT)
        out.extend(enc.encode_ordinary(d))
    return out


def write(out_dir, shard_size, max_shards=None):
    enc = gpt2_local_encoding()
    token_docs = (fineweb.tokenize_doc(d, enc) for d in docs())
    return fineweb.write_shards(token_docs, out_dir, "fineweb", shard_size, max_shards, log=lambda *_: None)


def test_module_imports_without_datasets():
    assert hasattr(fineweb, "write_shards") and hasattr(fineweb, "write_datafile")
    if fineweb.datasets is None:  # then main() must refuse with one clear error line
        p = subprocess.run([sys.executable, os.path.join(REPO, "dev", "data", "fineweb.py"), "--shards", "1"],
                           capture_output=True, text=True)
        assert p.returncode != 0 and p.stderr.strip().startswith("error: ") and "datasets" in p.stderr, p.stderr


def test_shards_names_sizes_tokens():
    d = tmpdir("full")
    ref = expected_stream()
    written = write(d, 5000)
    n = (len(ref) + 4999) // 5000
    assert len(written) == n >= 4, (len(written), n)
    names = [os.path.basename(p) for p, _ in written]
    assert names == ["fineweb_val_000000.bin"] + ["fineweb_train_%06d.bin" % k for k in range(1, n)], names
    assert sorted(os.listdir(d)) == sorted(names), "unexpected files (left-over .tmp?)"
    got = []
    for k, (path, ntok) in enumerate(written):
        toks = read_shard(path)
        assert len(toks) == ntok == (5000 if k < n - 1 else len(ref) - 5000 * (n - 1))
        got += toks
    assert got[0] == EOT
    assert got == ref, "tokens differ from tiktoken's encoding of the documents"


def test_max_shards():
    d = tmpdir("limited")
    written = write(d, 3000, max_shards=3)
    assert [os.path.basename(p) for p, _ in written] == \
        ["fineweb_val_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    ref = expected_stream()
    got = []
    for path, ntok in written:
        assert ntok == 3000
        got += read_shard(path)
    assert got == ref[:9000]


def test_write_datafile_roundtrip():
    d = tmpdir("single")
    path = os.path.join(d, "one.bin")
    fineweb.write_datafile(path, [EOT, 0, 1, 65535, 50255])
    assert read_shard(path) == [EOT, 0, 1, 65535, 50255]
    assert os.listdir(d) == ["one.bin"]


def test_same_bytes_as_cpp_tool():
    if not os.path.isfile(TOOL):
        print("  (skipped: build/tokenize not built)")
        return
    d = tmpdir("cpp")
    src = os.path.join(d, "docs.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for doc in docs():
            f.write(json.dumps({"text": doc}) + "\n")
    cpp_dir, py_dir = tmpdir("cpp/out"), tmpdir("py")
    p = subprocess.run([TOOL, "--gpt2-dir", default_gpt2_dir(), "--shards", src, "--shard-size", "5000",
                        "--out", os.path.join(cpp_dir, "fineweb")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    written = write(py_dir, 5000)
    assert sorted(os.listdir(cpp_dir)) == sorted(os.path.basename(x) for x, _ in written)
    for path, _ in written:
        with open(path, "rb") as f1, open(os.path.join(cpp_dir, os.path.basename(path)), "rb") as f2:
            assert f1.read() == f2.read(), f"{os.path.basename(path)} differs between fineweb.py and build/tokenize"


def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            passed += 1
            print(f"PASS {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL {name}: {str(e)[:2000] or type(e).__name__}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
