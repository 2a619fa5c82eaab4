"""Reading llm.c token shards in tests: header of 256 int32 (magic 20240520, version 1, ntok, zeros), uint16 tokens."""
import array
import struct
import sys


def read_shard(path):
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[:1024])
    assert header[0] == 20240520 and header[1] == 1, f"{path}: bad magic/version {header[:2]}"
    assert all(h == 0 for h in header[3:]), f"{path}: header words 3..255 must be zero"
    assert len(data) == 1024 + 2 * header[2], f"{path}: size {len(data)} != 1024 + 2*{header[2]}"
    toks = array.array("H")
    toks.frombytes(data[1024:])
    if sys.byteorder != "little":
        toks.byteswap()
    return list(toks)
