#!/usr/bin/env python3
"""
test_tokenizer.py: checks build/tokenize (llmc/tokenizer.h) against tiktoken's GPT-2 encoding, the committed data
files, the tool's error handling, and dev/data/hellaswag.py's output.

    g++ -O2 -std=c++17 -I. dev/data/tokenize.cpp -o build/tokenize     # build the tool first
    python3 test/test_tokenizer.py                                      # prints "N passed, M failed"

Needs `pip install tiktoken` and the shared data (${SHARED_DATA:-<repo>/../shared/data}). tiktoken's encoding is
built locally from encoder.json + vocab.bpe (dev/data/gpt2_local_encoding.py), nothing is downloaded.
Also runs under pytest.
"""
import array
import atexit
import functools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "dev", "data"))
from gpt2_local_encoding import EOT, GPT2_PATTERN, default_gpt2_dir, gpt2_local_encoding, load_mergeable_ranks  # noqa: E402
from shard_util import read_shard  # noqa: E402

TOOL = os.path.join(REPO, "build", "tokenize")
SHARED = os.environ.get("SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
GPT2_DIR = default_gpt2_dir()
SHAKESPEARE = os.path.join(SHARED, "tinyshakespeare", "input.txt")
ENWIKI_VAL = os.path.join(SHARED, "enwiki2015", "val.jsonl")
HELLASWAG = os.path.join(SHARED, "hellaswag", "hellaswag_val_derived.jsonl")

_TMP = tempfile.mkdtemp(prefix="test_tokenizer_")
atexit.register(shutil.rmtree, _TMP, True)


def tmpdir(name):
    d = os.path.join(_TMP, name)
    os.makedirs(d, exist_ok=True)
    return d


@functools.lru_cache(maxsize=None)
def enc():
    return gpt2_local_encoding(GPT2_DIR)


def run_tool(*args, input_bytes=None, check=True):
    if not os.path.isfile(TOOL):
        raise AssertionError(f"{TOOL} is missing: build it with g++ -O2 -std=c++17 -I. dev/data/tokenize.cpp -o build/tokenize")
    p = subprocess.run([TOOL, "--gpt2-dir", GPT2_DIR, *args], cwd=REPO, input=input_bytes, capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"tokenize {' '.join(args)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p




def shards_of_docs(docs, name, raw_utf8=False):
    """encode a list of documents through the tool's jsonl path (one val shard), return the token list"""
    d = tmpdir(name)
    path = os.path.join(d, "in.jsonl")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        for doc in docs:
            f.write(json.dumps({"id": 1, "meta": {"a": [1, 2.5e3, None, True]}, "text": doc},
                               ensure_ascii=not raw_utf8) + "\n")
    run_tool("--shards", path, "--out", os.path.join(d, "x"), "--split", "val", "--shard-size", "2000000000")
    return read_shard(os.path.join(d, "x_val_000000.bin"))


def expected_docs(docs):
    out = []
    for doc in docs:
        out.append(EOT)
        out.extend(enc().encode_ordinary(doc))
    return out


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at token {i}: ours {a[max(0, i - 3):i + 4]} tiktoken {b[max(0, i - 3):i + 4]}"
    return f"lengths differ: ours {len(a)} tiktoken {len(b)}"


def adversarial_strings():
    rnd = random.Random(1234)
    s = [
        "", " ", "  ", "\n", "\r\n", "a\r\nb\r\n", "\t\tx", "x \t ", "trailing spaces   ", "   leading", "a  b",
        "a   b", " \n ", "\n\n\n", "\u00a0\u00a0x \u00a0", "\u3000x\u3000", "a\u2028b\u2029c", "\x1c\x1d\x1e\x1fz",
        "\x85x\x85", "\x0b\x0cv", "\x00\x01\x7f\x00", "tab\there\tand\t\tthere \t\n",
        "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'Ll 'LL 'VE 'M 'D", "don't can't I'm you're we've they'll he'd",
        "''s", "'''", "x'sa", " 's", "it\u2019s curly", "O'Neil's", "'", "'l", "'r", "'ve'", "rock'n'roll", "'ll've",
        "1234567890", "3.14159", "1,000,000", "2024-05-20", "\u0663\u0664\u0665", "\u0967\u0968\u0969",
        "\u00bd \u00be \u00b2", "\u216b", "\u2460\u2461", "\U0001d7d8\U0001d7d9", "0x1F", " 42", "a1b2c3", "1st 2nd",
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e", "\u4f60\u597d\uff0c\u4e16\u754c",
        "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u13a0 Cherokee",
        "\U00010348 Gothic", "\U00013000 hieroglyph", "\U00010d4a Garay (Unicode 16)", "\U00010940 Sidetic (Unicode 17)",
        "e\u0301", "a\u0300\u0301\u0302", "\u0301alone", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l",
        "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
        "\U0001f44d\U0001f3fd", " \U0001f389\U0001f389 ", "\u2764\ufe0f", "\U0001f1fa\U0001f1f8\U0001f1ec\U0001f1e7",
        "<|endoftext|>", "hello<|endoftext|>world", "<|endoftext|><|endoftext|>", "\ufeffBOM", "\ufffd",
        "zero\u200bwidth", "\u200d", "soft\u00adhyphen", "\ufb01 ligature", "\u24b6", "\u01c5 titlecase",
        "\u00df \u1e9e", "\u0130stanbul \u0131", "\U0010fffd\U000e0001\U000e0041",
        "def f(x):\n    return x**2  # comment\n", "if (a&&b||c) { }", "http://example.com/a?b=c&d=e#f",
        "    indented\n\tmixed \t\n", "   \n   \n", "a\n\n\nb", "!!!???...", " !!! ", "$$$100 ", "\\n\\t \\u0041",
        "a" * 5000, "1" * 1000, " " * 1000, "!" * 777, "\n" * 300, "ab" * 2000, " " * 999 + "x",
        "".join(rnd.choice("etaoinshrdlu") for _ in range(3000)),
        "".join(rnd.choice("abc 'xyz,.!?\n1\u00e9\u4e2d\U0001f600\u0301\t\u00a0") for _ in range(5000)),
    ]
    for _ in range(50):  # random short strings over a mixed alphabet
        s.append("".join(rnd.choice("ab 'sltdmrve\n\t1,.\u00e9\u0416\u4e2d\U0001f600\u0301\u00a0\u2009") for _ in range(rnd.randint(1, 40))))
    return s


# ------------------------------------------------------------------------------------------------------------
# tests: tokenizer

def test_ranks_match_encoder_json():
    ranks = load_mergeable_ranks(GPT2_DIR)  # raises if vocab.bpe order != encoder.json ids
    assert len(ranks) == 50256
    assert ranks[b"!"] == 0 and ranks[b" t"] == 256 and ranks[bytes([0])] == 188
    assert enc().n_vocab == 50257 and enc().eot_token == EOT


def test_pattern_equals_tiktoken_r50k():
    # our pattern is GPT-2's original; tiktoken's own gpt2 pattern is a faster spelling. Same output.
    import tiktoken
    try:
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        return
    other = tiktoken.Encoding(name="gpt2_r50k", pat_str=r50k_pat_str, mergeable_ranks=load_mergeable_ranks(GPT2_DIR),
                              special_tokens={"<|endoftext|>": EOT})
    for s in adversarial_strings():
        assert other.encode_ordinary(s) == enc().encode_ordinary(s), repr(s)


def test_tinyshakespeare_encode():
    ours = [int(x) for x in run_tool("--encode", SHAKESPEARE).stdout.split()]
    with open(SHAKESPEARE, encoding="utf-8") as f:
        ref = enc().encode_ordinary(f.read())
    assert len(ref) == 338025
    assert ours == ref, first_diff(ours, ref)


def test_encode_stdin():
    text = "Hello world, it's <|endoftext|> 2024!\n"
    ours = [int(x) for x in run_tool("--encode", "-", input_bytes=text.encode()).stdout.split()]
    assert ours == enc().encode_ordinary(text) == [15496, 995, 11, 340, 338, 1279, 91, 437, 1659, 5239, 91, 29, 48609, 0, 198]
    ours = [int(x) for x in run_tool("--encode", input_bytes=b"").stdout.split()]
    assert ours == []


def test_enwiki_val_all_documents():
    d = tmpdir("enwiki")
    run_tool("--shards", ENWIKI_VAL, "--out", os.path.join(d, "ev"), "--split", "val", "--shard-size", "2000000000")
    ours = read_shard(os.path.join(d, "ev_val_000000.bin"))
    docs = []
    with open(ENWIKI_VAL, encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
    assert len(docs) == 472
    ref = expected_docs(docs)
    assert ours == ref, first_diff(ours, ref)


def test_adversarial_strings():
    docs = adversarial_strings()
    ref = expected_docs(docs)
    for raw in (False, True):  # \u-escaped JSON and raw UTF-8 JSON
        ours = shards_of_docs(docs, f"adv{int(raw)}", raw_utf8=raw)
        assert ours == ref, first_diff(ours, ref)
    # each string alone through --encode (no JSON involved) for a handful, incl. the empty one
    for s in docs[:12] + docs[-60:-50]:
        ours = [int(x) for x in run_tool("--encode", "-", input_bytes=s.encode()).stdout.split()]
        assert ours == enc().encode_ordinary(s), repr(s)


def test_json_lone_surrogates():
    # Python's json keeps lone surrogates; tiktoken turns them into U+FFFD, and so does our JSON reader
    d = tmpdir("surrogate")
    path = os.path.join(d, "in.jsonl")
    with open(path, "w") as f:
        f.write('{"text": "a\\ud800b"}\n{"text": "\\udc00 x \\ud83d"}\n{"text": "\\ud83d\\ude00\\u00e9\\"\\\\\\/\\b\\f\\n\\r\\t"}\n')
    run_tool("--shards", path, "--out", os.path.join(d, "x"), "--split", "val")
    docs = []
    with open(path) as f:
        for line in f:
            docs.append(json.loads(line)["text"])
    ours = read_shard(os.path.join(d, "x_val_000000.bin"))
    assert ours == expected_docs(docs), first_diff(ours, expected_docs(docs))


def test_every_codepoint_in_context():
    # every codepoint of planes 0-3 and tags/variation selectors, in contexts where its class (letter, number,
    # space, other) changes the output; this pins the Unicode version of llmc/unicode_tables.h to tiktoken's
    cps = [c for c in list(range(0x40000)) + list(range(0xE0000, 0xE0200)) + [0xF0000, 0x10FFFD]
           if not 0xD800 <= c <= 0xDFFF]
    docs = []
    for k in range(0, len(cps), 512):
        docs.append("".join(f"{c}'s {c}{c} x{c}1 {c}a!{c}\n1{c}" for c in map(chr, cps[k:k + 512])))
    ours = shards_of_docs(docs, "codepoints", raw_utf8=True)
    ref = expected_docs(docs)
    assert ours == ref, first_diff(ours, ref)


def expected_tokenizer_bin():
    header = [0] * 256
    header[0], header[1], header[2], header[3] = 20240328, 2, 50257, EOT
    out = [struct.pack("<256I", *header)]
    for i in range(50257):
        b = enc().decode_single_token_bytes(i)
        out.append(bytes([len(b)]) + b)
    return b"".join(out)


def test_tokenizer_bin():
    d = tmpdir("tokbin")
    path = os.path.join(d, "gpt2_tokenizer.bin")
    run_tool("--write-tokenizer", path)
    with open(path, "rb") as f:
        ours = f.read()
    assert not os.path.exists(path + ".tmp")
    assert ours == expected_tokenizer_bin(), "tokenizer.bin differs from llm.c's layout built with tiktoken"
    with open(os.path.join(REPO, "data", "gpt2_tokenizer.bin"), "rb") as f:
        assert f.read() == ours, "committed data/gpt2_tokenizer.bin is stale: rerun dev/data/prepare_tinyshakespeare.sh"


def test_decode_roundtrip():
    with open(SHAKESPEARE, "rb") as f:
        texts = [f.read()]
    texts += [s.encode("utf-8") for s in adversarial_strings()]
    for i, t in enumerate(texts):
        ids = run_tool("--encode", "-", input_bytes=t).stdout
        back = run_tool("--decode", "-", "--tokenizer", "data/gpt2_tokenizer.bin", input_bytes=ids).stdout
        assert back == t, f"round trip failed for text {i}: {t[:60]!r}"
        if i > 30:
            break
    # every token id decodes to its own bytes
    ids = " ".join(str(i) for i in range(50257)).encode()
    back = run_tool("--decode", "--tokenizer", "data/gpt2_tokenizer.bin", input_bytes=ids).stdout
    assert back == b"".join(enc().decode_single_token_bytes(i) for i in range(50257))


# ------------------------------------------------------------------------------------------------------------
# tests: committed data

def llmc_tinyshakespeare_tokens():
    # llm.c's dev/data/tinyshakespeare.py: split on "\n\n", EOT before each piece, "\n\n" re-added except last
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()
    sections = text.split("\n\n")
    toks = []
    for i, s in enumerate(sections):
        toks.append(EOT)
        toks.extend(enc().encode_ordinary(s + "\n\n" if i != len(sections) - 1 else s))
    return toks


def test_committed_tinyshakespeare_shards():
    val = read_shard(os.path.join(REPO, "data", "tinyshakespeare", "tiny_shakespeare_val.bin"))
    train = read_shard(os.path.join(REPO, "data", "tinyshakespeare", "tiny_shakespeare_train.bin"))
    assert len(val) == 32768 and len(train) == 305260, (len(val), len(train))
    assert val[0] == EOT
    ref = llmc_tinyshakespeare_tokens()
    assert val == ref[:32768], first_diff(val, ref[:32768])
    assert train == ref[32768:], first_diff(train, ref[32768:])


def test_shard_sizes_and_names():
    # FineWeb layout: shard 0 val, the rest train; exact sizes; the last shard holds the remainder
    d = tmpdir("names")
    docs = ["doc %d: " % i + "some words here. " * (i % 7 + 1) for i in range(300)]
    path = os.path.join(d, "in.jsonl")
    with open(path, "w") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc}) + "\n")
    ref = expected_docs(docs)
    run_tool("--shards", path, "--out", os.path.join(d, "fw"), "--shard-size", "1000")
    names = sorted(os.listdir(d))
    n = (len(ref) + 999) // 1000
    want = ["fw_val_000000.bin"] + ["fw_train_%06d.bin" % k for k in range(1, n)] + ["in.jsonl"]
    assert names == sorted(want), names
    got = read_shard(os.path.join(d, "fw_val_000000.bin"))
    for k in range(1, n):
        part = read_shard(os.path.join(d, "fw_train_%06d.bin" % k))
        assert len(part) == (1000 if k < n - 1 else len(ref) - 1000 * (n - 1))
        got += part
    assert got == ref
    # --split train numbers from 1; txt --docs whole is one document; --val-tokens gives two unnumbered files
    d2 = tmpdir("names2")
    txt = os.path.join(d2, "in.txt")
    with open(txt, "w") as f:
        f.write("".join(docs))
    run_tool("--shards", txt, "--out", os.path.join(d2, "t"), "--split", "train", "--shard-size", "1e3")
    run_tool("--shards", txt, "--out", os.path.join(d2, "v"), "--val-tokens", "77")
    whole = [EOT] + enc().encode_ordinary("".join(docs))
    assert read_shard(os.path.join(d2, "t_train_000001.bin")) == whole[:1000]
    assert not os.path.exists(os.path.join(d2, "t_val_000000.bin"))
    assert read_shard(os.path.join(d2, "v_val.bin")) == whole[:77]
    assert read_shard(os.path.join(d2, "v_train.bin")) == whole[77:]
    assert not [x for x in os.listdir(d2) if x.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------------------
# tests: bad input -> one "error: ..." line, exit 1, nothing left behind

def expect_error(args, contains=None, input_bytes=None, clean_dir=None):
    p = run_tool(*args, input_bytes=input_bytes, check=False)
    err = p.stderr.decode(errors="replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 1, f"{args}: exit code {p.returncode}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{args}: stderr should be one 'error: ' line: {err!r}"
    if contains:
        assert contains in lines[0], f"{args}: {lines[0]!r} does not mention {contains!r}"
    if clean_dir:
        left = [x for x in os.listdir(clean_dir) if x.endswith(".bin") or x.endswith(".tmp")]
        assert not left, f"{args}: left behind {left}"


def test_errors_missing_input_and_bad_flags():
    d = tmpdir("err1")
    out = os.path.join(d, "x")
    expect_error(["--shards", os.path.join(d, "nope.jsonl"), "--out", out], "nope.jsonl", clean_dir=d)
    expect_error(["--encode", os.path.join(d, "nope.txt")], "nope.txt")
    expect_error(["--shards", SHAKESPEARE], "--out")
    expect_error(["--shards", SHAKESPEARE, "--out", out, "--shard-size", "0"], "--shard-size", clean_dir=d)
    expect_error(["--shards", SHAKESPEARE, "--out", out, "--shard-size", "abc"], "--shard-size", clean_dir=d)
    expect_error(["--shards", SHAKESPEARE, "--out", out, "--format", "csv"], "--format", clean_dir=d)
    expect_error(["--shards", SHAKESPEARE, "--out", out, "--val-tokens", "400000"], "val-tokens", clean_dir=d)
    expect_error(["--bogus"], "--bogus")
    expect_error([], "mode")
    expect_error(["--gpt2-dir", d, "--encode", SHAKESPEARE], "encoder.json")


def test_errors_unwritable_output():
    d = tmpdir("err2")
    afile = os.path.join(d, "afile")
    with open(afile, "w") as f:
        f.write("x")
    expect_error(["--shards", SHAKESPEARE, "--out", os.path.join(d, "no", "such", "dir", "x")], "cannot open")
    expect_error(["--shards", SHAKESPEARE, "--out", os.path.join(afile, "x")], "cannot open")
    expect_error(["--write-tokenizer", os.path.join(afile, "tok.bin")], "cannot open")
    assert sorted(os.listdir(d)) == ["afile"]


def test_errors_bad_jsonl_leaves_nothing():
    d = tmpdir("err3")
    good = json.dumps({"text": "word " * 400})
    cases = [
        ('{"text": "unterminated}', ":3:"),
        ('{"text": 12}', ":3:"),
        ('{"title": "no text field"}', "no field"),
        ('{"text": "a"} trailing', ":3:"),
        ('["not", "an", "object"]', ":3:"),
        ('{"text": "bad escape \\q"}', ":3:"),
        ('{"text": "bad \xff utf8"}', ":3:"),
    ]
    for k, (bad, msg) in enumerate(cases):
        path = os.path.join(d, "in.jsonl")
        with open(path, "wb") as f:
            f.write((good + "\n" + good + "\n").encode() + bad.encode("latin-1") + b"\n" + (good + "\n").encode())
        # shard size 100: several shards are complete before line 3 fails; none may remain
        expect_error(["--shards", path, "--out", os.path.join(d, "x"), "--shard-size", "100"], msg, clean_dir=d)
        # same through stdin
        with open(path, "rb") as f:
            data = f.read()
        expect_error(["--shards", "-", "--format", "jsonl", "--out", os.path.join(d, "y"), "--shard-size", "100"],
                     msg, input_bytes=data, clean_dir=d)


def test_errors_bad_utf8_text():
    d = tmpdir("err4")
    path = os.path.join(d, "in.txt")
    with open(path, "wb") as f:
        f.write(b"fine text\n\nmore \xc3\x28 bad")
    expect_error(["--shards", path, "--out", os.path.join(d, "x"), "--docs", "paragraphs", "--shard-size", "2"],
                 "UTF-8", clean_dir=d)
    expect_error(["--encode", path], "byte offset 16")
    expect_error(["--encode", "-"], "UTF-8", input_bytes=b"\xed\xa0\x80")  # encoded surrogate
    expect_error(["--encode", "-"], "UTF-8", input_bytes=b"\xc0\xaf")      # overlong


def test_errors_bad_tokenizer_file():
    d = tmpdir("err5")
    with open(os.path.join(REPO, "data", "gpt2_tokenizer.bin"), "rb") as f:
        good = f.read()
    bad_magic = os.path.join(d, "magic.bin")
    with open(bad_magic, "wb") as f:
        f.write(struct.pack("<I", 12345) + good[4:])
    bad_version = os.path.join(d, "version.bin")
    with open(bad_version, "wb") as f:
        f.write(good[:4] + struct.pack("<I", 3) + good[8:])
    truncated = os.path.join(d, "trunc.bin")
    with open(truncated, "wb") as f:
        f.write(good[:-5])
    short = os.path.join(d, "short.bin")
    with open(short, "wb") as f:
        f.write(good[:100])
    expect_error(["--decode", "-", "--tokenizer", bad_magic], "magic", input_bytes=b"1 2")
    expect_error(["--decode", "-", "--tokenizer", bad_version], "version", input_bytes=b"1 2")
    expect_error(["--decode", "-", "--tokenizer", truncated], "truncated", input_bytes=b"1 2")
    expect_error(["--decode", "-", "--tokenizer", short], "truncated", input_bytes=b"1 2")
    expect_error(["--decode", "-", "--tokenizer", os.path.join(d, "missing.bin")], "not found", input_bytes=b"1")
    expect_error(["--decode", "-", "--tokenizer", "data/gpt2_tokenizer.bin"], "outside", input_bytes=b"50257")
    expect_error(["--decode", "-", "--tokenizer", "data/gpt2_tokenizer.bin"], "expected", input_bytes=b"12 x")


# ------------------------------------------------------------------------------------------------------------
# tests: HellaSwag eval file

def test_hellaswag_evalfile():
    import hellaswag
    out = os.path.join(tmpdir("hellaswag"), "hellaswag_val.bin")
    p = subprocess.run([sys.executable, os.path.join(REPO, "dev", "data", "hellaswag.py"), "--out", out],
                       cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    header, examples = hellaswag.read_evalfile(out)
    assert header[:3] == [20240522, 1, 10042] and len(examples) == 10042
    src = hellaswag.load_examples(HELLASWAG)
    for i, (ex, ref) in enumerate(zip(examples, src)):
        assert ex["index"] == i and ex["label"] == ref["label"]
        if i % 50 == 0:  # tokens of a sample of examples
            assert ex["ctx"] == enc().encode_ordinary(ref["ctx"])
            assert ex["endings"] == [enc().encode_ordinary(" " + e) for e in ref["endings"]]
    assert examples[0]["ctx"] == enc().encode_ordinary("A man is sitting on a roof. he") and examples[0]["label"] == 3
    built = os.path.join(REPO, "data", "hellaswag", "hellaswag_val.bin")
    if os.path.exists(built):  # a previously built copy must be current
        with open(built, "rb") as f1, open(out, "rb") as f2:
            assert f1.read() == f2.read(), "data/hellaswag/hellaswag_val.bin is stale: rerun dev/data/hellaswag.py"


# ------------------------------------------------------------------------------------------------------------

def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    t_all = time.time()
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            passed += 1
            print(f"PASS {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            msg = str(e) or type(e).__name__
            print(f"FAIL {name} ({time.time() - t0:.1f}s): {msg[:2000]}", flush=True)
    print(f"total {time.time() - t_all:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
