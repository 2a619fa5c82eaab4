"""
gpt2_local_encoding.py: tiktoken's GPT-2 encoding built LOCALLY from OpenAI's encoder.json + vocab.bpe (no download).

    from gpt2_local_encoding import gpt2_local_encoding
    enc = gpt2_local_encoding()                 # files from $SHARED_DATA/gpt2 or <repo>/../shared/data/gpt2
    enc.encode_ordinary("Hello world")          # [15496, 995]

The mergeable ranks are rebuilt from vocab.bpe (the 256 single bytes in GPT-2's byte order, then one token per merge
line) and checked to equal the ids in encoder.json. The pre-tokenization pattern is GPT-2's original one; tiktoken's
own gpt2 pattern (possessive quantifiers, '\\s++$') is an equivalent, faster spelling of it.
"""
import json
import os

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = 50256

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_gpt2_dir():
    shared = os.environ.get("SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    return os.path.join(shared, "gpt2")


def byte_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    printable = [b for b in range(256) if ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    table = {}
    nxt = 256
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(nxt)
            nxt += 1
    return table


def load_mergeable_ranks(gpt2_dir=None):
    """bytes -> rank dict for tiktoken, built from vocab.bpe and verified against encoder.json."""
    gpt2_dir = gpt2_dir or default_gpt2_dir()
    b2u = byte_to_unicode()
    u2b = {u: b for b, u in b2u.items()}

    def to_bytes(spelled):
        return bytes(u2b[ch] for ch in spelled)

    # single-byte tokens come first, in the order of their unicode stand-ins: the printable bytes, then the rest
    byte_order = sorted(range(256), key=lambda b: ord(b2u[b]))
    ranks = {bytes([b]): i for i, b in enumerate(byte_order)}
    with open(os.path.join(gpt2_dir, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0].startswith("#version"), "vocab.bpe: missing #version line"
    for line in lines[1:]:
        if not line:
            continue
        a, b = line.split(" ")
        ranks[to_bytes(a) + to_bytes(b)] = len(ranks)

    with open(os.path.join(gpt2_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    from_json = {to_bytes(k): v for k, v in encoder.items() if k != "<|endoftext|>"}
    if from_json != ranks:
        raise ValueError("vocab.bpe ranks do not equal the ids in encoder.json")
    if encoder.get("<|endoftext|>") != EOT or len(encoder) != EOT + 1:
        raise ValueError("encoder.json: expected 50257 tokens with <|endoftext|> = 50256")
    return ranks


_CACHE = {}


def gpt2_local_encoding(gpt2_dir=None):
    """tiktoken.Encoding equal to tiktoken.get_encoding('gpt2'), built from local files."""
    import tiktoken
    gpt2_dir = os.path.abspath(gpt2_dir or default_gpt2_dir())
    if gpt2_dir not in _CACHE:
        _CACHE[gpt2_dir] = tiktoken.Encoding(
            name="gpt2_local",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=load_mergeable_ranks(gpt2_dir),
            special_tokens={"<|endoftext|>": EOT},
        )
    return _CACHE[gpt2_dir]


if __name__ == "__main__":
    enc = gpt2_local_encoding()
    print(enc.n_vocab, enc.encode_ordinary("Hello world, it's <|endoftext|> 2024!"))
