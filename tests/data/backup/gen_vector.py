#!/usr/bin/env python3
"""gen_vector.py: an independent Python implementation of coffre's backup chunker and blob ids
(docs/formats.md, "Backup repository"), used to write chunker-vector.txt. The unit test
tests/unit/backup/test_backup_format.c checks that the C code finds the same cuts and ids.

Input: 4096 bytes; byte i is the top byte of a 64-bit LCG state after i+1 steps
(state = state * 6364136223846793005 + 1442695040888963407 mod 2^64, start 0x0123456789abcdef).
Chunker key: bytes 0x00..0x1f. Blob id key: bytes 0x20..0x3f. Parameters 64 / 256 / 1024.
"""
import hashlib
import hmac

MIN, AVG, MAX = 64, 256, 1024
M64 = (1 << 64) - 1


def data(n):
    s = 0x0123456789ABCDEF
    out = bytearray()
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & M64
        out.append(s >> 56)
    return bytes(out)


def gear(key):
    g = []
    for i in range(256):
        d = hashlib.blake2b(b"coffre-cdc-gear" + bytes([i]), digest_size=32, key=key).digest()
        g.append(int.from_bytes(d[:8], "little"))
    return g


def top_mask(bits):
    return ((1 << bits) - 1) << (64 - bits)


def cut(g, p):
    n = len(p)
    if n <= MIN:
        return n
    bits = AVG.bit_length() - 1
    ms, ml = top_mask(bits + 2), top_mask(bits - 2)
    end = min(n, MAX)
    mid = min(end, AVG)
    h = 0
    for i in range(MIN - 64, MIN):
        h = ((h << 1) + g[p[i]]) & M64
    i = MIN
    while i < mid:
        h = ((h << 1) + g[p[i]]) & M64
        if h & ms == 0:
            return i + 1
        i += 1
    while i < end:
        h = ((h << 1) + g[p[i]]) & M64
        if h & ml == 0:
            return i + 1
        i += 1
    return end


def main():
    p = data(4096)
    g = gear(bytes(range(32)))
    idkey = bytes(range(32, 64))
    off, cuts, ids = 0, [], []
    while off < len(p):
        c = cut(g, p[off:])
        ids.append(hmac.new(idkey, p[off:off + c], hashlib.sha256).hexdigest())
        off += c
        cuts.append(off)
    print("# coffre backup chunker test vector (written by gen_vector.py; see SOURCES.md)")
    print("params %d %d %d" % (MIN, AVG, MAX))
    print("input_sha256 %s" % hashlib.sha256(p).hexdigest())
    print("cuts %s" % " ".join(str(c) for c in cuts))
    for i in ids:
        print("id %s" % i)


if __name__ == "__main__":
    main()
