#!/usr/bin/env python3
"""Writes the hostile inputs of parsers/tests/hostile.rs (and replay/tests/hostile_mmr.rs's
.mmr files): each is small on disk and asks a reader for far more than it holds (huge sizes,
absurd counts, cycles, truncated frames, zstd bombs). The binary ones are real paired captures
(corpus/paired) with fields patched, so every byte before the patch is a real producer's.
Run from anywhere; needs the zstd CLI. Deterministic: same script, same bytes."""
import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PAIRED = os.path.join(ROOT, "corpus", "paired")
MMR_DIR = os.path.join(ROOT, "replay", "tests", "hostile")


def unzstd(name):
    return subprocess.run(["zstd", "-dcq", os.path.join(PAIRED, name)], check=True,
                          stdout=subprocess.PIPE).stdout


def zstd(data, level=19):
    return subprocess.run(["zstd", f"-{level}", "-q", "-c", "--no-check"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def zstd_stream_of(gen, level=3):
    """zstd of a long generated stream without holding it in memory."""
    p = subprocess.Popen(["zstd", f"-{level}", "-q", "-c", "--no-check"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(p.stdout.read()))
    t.start()
    for chunk in gen:
        p.stdin.write(chunk)
    p.stdin.close()
    t.join()
    p.wait()
    return out[0]


def write(name, data, d=HERE):
    os.makedirs(d, exist_ok=True)
    if d == HERE and len(data) > (256 << 10) and not name.endswith(".zst"):
        # Big patched captures (v6's event formats are 2 MB) are kept compressed; the readers
        # look through zstd.
        data, name = zstd(data), name + ".zst"
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


HDR = b"# tracer: nop\n#\n"


def line(comm, pid, cpu, ts, name, payload):
    return b"%16s-%-7d [%03d] .....  %d.%06d: %s: %s\n" % (comm, pid, cpu, ts // 1000000,
                                                          ts % 1000000, name, payload)


OK_LINE = line(b"mmwork", 100, 0, 5000000, b"tlb_flush", b"pages:1 reason:local MM shootdown (3)")

# ---- text ------------------------------------------------------------------------------------
# A 256 MiB line without a newline, after a valid line: the line buffer must stay capped.
write("ftrace-long-line.trace.zst",
      zstd_stream_of([HDR, OK_LINE, b"x" * (64 << 20)] + [b"x" * (64 << 20)] * 3 + [b"\n", OK_LINE]))


def long_names():
    for i in range(20000):
        yield line(b"mmwork", 100, 0, 5000000 + i, b"e" * 2000 + b"%d" % i, b"x=1")


# 20,000 distinct 2 KB event names: interner, name tables and stats keyed by name.
write("ftrace-long-names.trace.zst", zstd_stream_of(long_names()))


def long_payloads():
    for i in range(6000):
        yield line(b"mmwork", 100, 0, 5000000 + i, b"tlb_flush",
                   b"pages:1 reason:" + b"r" * 32768 + b"%d (3)" % i)


# 6,000 tlb_flush lines with distinct 32 KiB reasons: the 4096-record reorder window would hold
# 128 MiB of interned reasons; stats' reason table is a linear scan (quadratic time).
write("ftrace-long-payloads.trace.zst", zstd_stream_of(long_payloads()))


def many_reasons():
    for i in range(60000):
        yield line(b"mmwork", 100, 0, 5000000 + i, b"tlb_flush",
                   b"pages:1 reason:bogus reason %d (9)" % i)


# 60,000 distinct short tlb_flush reasons: stats' per-reason table (scan per record).
write("ftrace-many-reasons.trace.zst", zstd_stream_of(many_reasons()))


def many_cpus():
    for i in range(50000):
        yield line(b"mmwork", 100, 5000 + i, 5000000 + i, b"tlb_flush",
                   b"pages:1 reason:local MM shootdown (3)")


# 50,000 distinct CPU numbers: per-CPU tables.
write("ftrace-many-cpus.trace.zst", zstd_stream_of(many_cpus()))


def zstd_frame_window(log, content):
    """A zstd frame whose header asks for a 2^log window, one raw block."""
    fhd = 0x00  # no content size, no checksum, not single-segment: the window descriptor rules
    wd = (log - 10) << 3
    bh = 1 | (0 << 1) | (len(content) << 3)
    return (b"\x28\xb5\x2f\xfd" + bytes([fhd, wd]) + struct.pack("<I", bh)[:3] + content)


# A frame asking for a 2 GiB window for 200 bytes of content (the reader allows 128 MiB).
write("ftrace-zstd-window-2g.trace.zst", zstd_frame_window(31, HDR + OK_LINE))
# A real capture's zstd stream cut in the middle of a frame.
tour = open(os.path.join(ROOT, "corpus", "captures", "fmt-pipe.trace.zst"), "rb").read()
write("ftrace-truncated-frame.trace.zst", tour[: len(tour) // 2])
# trace-cmd report / perf script text: over-long lines and payloads behind a valid start.
rep = unzstd("mmwork.v6.report.txt.zst").split(b"\n")
write("tracecmd-long-payloads.txt.zst", zstd_stream_of(
    [b"\n".join(rep[:20]) + b"\n"] +
    [rep[17].split(b"tlb_flush:")[0] + b"tlb_flush: pages=1 reason=" + b"q" * 32768 + b"%d (3)\n" % i
     for i in range(6000)]))
ps = unzstd("mmwork.perf.script.txt.zst").split(b"\n")
write("perf-script-long-names.txt.zst", zstd_stream_of(
    [b"\n".join(ps[:20]) + b"\n"] +
    [ps[5].split(b"exceptions:")[0] + b"tlb:" + b"n" * 3000 + b"%d: x=1\n" % i for i in range(20000)]))

# ---- perf.data -------------------------------------------------------------------------------
pd = unzstd("mmwork.perf.data.zst")
assert pd[:8] == b"PERFILE2"
# Header: magic, size, attr_size, attrs{off,size}, data{off,size}, event_types{off,size}, bits.
def patch_u64(b, off, v):
    b = bytearray(b)
    b[off:off + 8] = struct.pack("<Q", v)
    return bytes(b)


write("perf-data-size-huge.perf.data", patch_u64(pd, 48, 1 << 62))
write("perf-attr-size-huge.perf.data", patch_u64(patch_u64(pd, 16, 1 << 40), 32, 1 << 50))
write("perf-truncated.perf.data", pd[: len(pd) * 2 // 3])
data_off, data_size = struct.unpack_from("<QQ", pd, 40)
feat_table = data_off + data_size
# Every feature section claims 1 TiB at offset 1 TiB.
b = bytearray(pd)
for i in range(0, 16 * 16, 16):
    if feat_table + i + 16 <= len(b):
        b[feat_table + i:feat_table + i + 16] = struct.pack("<QQ", 1 << 40, 1 << 40)
write("perf-feature-sections-huge.perf.data", bytes(b))

pp = unzstd("mmwork.pipe.perf.data.zst")
assert pp[:8] == b"PERFILE2" and struct.unpack_from("<Q", pp, 8)[0] == 16


def rec(typ, body, misc=0):
    return struct.pack("<IHH", typ, misc, 8 + len(body)) + body


# The pipe stream's first records (attrs, features), cut at a record boundary past 8 KiB.
# HEADER_TRACING_DATA (66) is followed by its payload, outside the record's size.
o = 16
while o < 8192:
    typ = struct.unpack_from("<I", pp, o)[0]
    extra = struct.unpack_from("<I", pp, o + 8)[0] if typ == 66 else 0
    o += struct.unpack_from("<H", pp, o + 6)[0] + extra
pp_head = pp[:o]
# PERF_RECORD_COMPRESSED (81) holding a zstd frame of 1 GiB of zeros, after the real stream.
bomb = subprocess.run("head -c 1073741824 /dev/zero | zstd -19 -q -c --no-check", shell=True,
                      check=True, stdout=subprocess.PIPE).stdout
assert len(bomb) < 65000, len(bomb)
write("perf-pipe-zstd-bomb.perf.data", pp_head + rec(81, bomb))
# A zstd bomb of VALID records: the stream's first real SAMPLE repeated to 288 MiB (over the
# 256 MiB arena cap) in one zstd stream split over two COMPRESSED records, with no FINISHED_ROUND:
# a reader that holds a round until its end holds it all.
o = 16
while struct.unpack_from("<I", pp, o)[0] != 9:
    typ = struct.unpack_from("<I", pp, o)[0]
    extra = struct.unpack_from("<I", pp, o + 8)[0] if typ == 66 else 0
    o += struct.unpack_from("<H", pp, o + 6)[0] + extra
sample = pp[o:o + struct.unpack_from("<H", pp, o + 6)[0]]
copies = (288 << 20) // len(sample)
valid_bomb = zstd_stream_of((sample * 8192 for _ in range(copies // 8192)), level=19)
half = len(valid_bomb) // 2
assert len(valid_bomb) - half < 65000, len(valid_bomb)
write("perf-pipe-zstd-bomb-valid-samples.perf.data",
      pp_head + rec(81, valid_bomb[:half]) + rec(81, valid_bomb[half:]))
# A record of size 0 (a reader that steps by it loops forever).
write("perf-pipe-record-size-zero.perf.data", pp[:16] + struct.pack("<IHH", 9, 0, 0) + b"\0" * 64)
# PERF_RECORD_HEADER_TRACING_DATA (66) announcing 4 GiB - 16 of tracing data.
write("perf-pipe-tracing-data-huge.perf.data",
      pp[:16] + rec(66, struct.pack("<I", 0xFFFFFFF0) + b"\0" * 4))
write("perf-pipe-truncated.perf.data", pp[: len(pp) // 2 + 3])

# ---- trace.dat -------------------------------------------------------------------------------
v6 = unzstd("mmwork.v6.dat.zst")
assert v6[:10] == b"\x17\x08Dtracing" and v6[10:12] == b"6\0"
endian, long_size = v6[12], v6[13]
pos = 14 + 4  # page size
assert v6[pos:pos + 12] == b"header_page\0"
hp_size_at = pos + 12
write("tracedat-v6-header-page-huge.dat", patch_u64(v6[:65536], hp_size_at, 1 << 40))
write("tracedat-v6-page-size-huge.dat",
      v6[:14] + struct.pack("<I", 0x80000000) + v6[18:65536])
# Walk to the ftrace format count.
hp_size = struct.unpack_from("<Q", v6, hp_size_at)[0]
pos = hp_size_at + 8 + hp_size
assert v6[pos:pos + 13] == b"header_event\0"
he_size = struct.unpack_from("<Q", v6, pos + 13)[0]
pos = pos + 13 + 8 + he_size
fcount_at = pos
write("tracedat-v6-format-count-huge.dat",
      v6[:fcount_at] + struct.pack("<I", 0xFFFFFFFF) + v6[fcount_at + 4:fcount_at + 4 + 65536])
# Walk the formats, systems, kallsyms, printk, cmdlines to the cpu count.
n = struct.unpack_from("<I", v6, pos)[0]
pos += 4
for _ in range(n):
    pos += 8 + struct.unpack_from("<Q", v6, pos)[0]
nsys = struct.unpack_from("<I", v6, pos)[0]
pos += 4
for _ in range(nsys):
    pos = v6.index(b"\0", pos) + 1
    ne = struct.unpack_from("<I", v6, pos)[0]
    pos += 4
    for _ in range(ne):
        pos += 8 + struct.unpack_from("<Q", v6, pos)[0]
ksize_at = pos
# The capture without its kallsyms (2 MB of the file), so the files below stay small.
v6 = v6[:ksize_at] + struct.pack("<I", 0) + v6[ksize_at + 4 + struct.unpack_from("<I", v6, ksize_at)[0]:]
write("tracedat-v6-kallsyms-huge.dat",
      v6[:ksize_at] + struct.pack("<I", 0xFFFFFFF0) + v6[ksize_at + 4:ksize_at + 4 + 4096])
pos += 4 + struct.unpack_from("<I", v6, pos)[0]
pos += 4 + struct.unpack_from("<I", v6, pos)[0]
pos += 8 + struct.unpack_from("<Q", v6, pos)[0]
cpus_at = pos
write("tracedat-v6-cpus-huge.dat",
      v6[:cpus_at] + struct.pack("<I", 0x7FFFFFFF) + v6[cpus_at + 4:cpus_at + 4 + 4096])
# Every flyrecord CPU buffer claims 1 TiB at offset 1 TiB.
fly = v6.index(b"flyrecord\0", cpus_at) + 10
ncpu = struct.unpack_from("<I", v6, cpus_at)[0]
b = bytearray(v6[: fly + 16 * ncpu])
for c in range(ncpu):
    b[fly + 16 * c: fly + 16 * c + 16] = struct.pack("<QQ", 1 << 40, 1 << 40)
write("tracedat-v6-cpu-data-huge.dat", bytes(b))
write("tracedat-v6-truncated.dat", v6[: fly + 16 * ncpu + 3000])

v7 = unzstd("mmwork.v7.dat.zst")
assert v7[:12] == b"\x17\x08Dtracing7\0"
p = v7.index(b"\0", 18) + 1  # compression name
p = v7.index(b"\0", p) + 1  # compression version
head7 = v7[:p]


def section(sid, body, flags=0):
    return struct.pack("<HHIQ", sid, flags, 0, len(body)) + body


def opt(oid, body):
    return struct.pack("<HI", oid, len(body)) + body


# Options whose DONE option points back at themselves: a cycle.
at = len(head7) + 8
write("tracedat-v7-options-cycle.dat",
      head7 + struct.pack("<Q", at) + section(0, opt(0, struct.pack("<Q", at))))
# A compressed HEADER_INFO section declaring 4 GiB - 1 and holding a 1 GiB zstd bomb.
at = len(head7) + 8
opts = section(0, opt(16, struct.pack("<Q", 0)) + opt(0, struct.pack("<Q", 0)))
sec_at = at + len(opts)
opts = section(0, opt(16, struct.pack("<Q", sec_at)) + opt(0, struct.pack("<Q", 0)))
write("tracedat-v7-section-zstd-bomb.dat",
      head7 + struct.pack("<Q", at) + opts +
      section(16, struct.pack("<II", len(bomb), 0xFFFFFFFF) + bomb, flags=1))
# The same bomb declaring 200 MiB: under MAX_SECTION_BYTES (256 MiB), refused by the
# declared-to-compressed ratio cap (MAX_SECTION_RATIO) before anything is inflated.
write("tracedat-v7-section-zstd-bomb-200m.dat",
      head7 + struct.pack("<Q", at) + opts +
      section(16, struct.pack("<II", len(bomb), 200 << 20) + bomb, flags=1))
# A BUFFER option announcing 2^32-1 CPUs in 20 bytes.
write("tracedat-v7-buffer-cpus-huge.dat",
      head7 + struct.pack("<Q", at) +
      section(0, opt(3, struct.pack("<Q", 0) + b"\0\0" + struct.pack("<II", 4096, 0xFFFFFFFF)
                     + b"\0" * 20) + opt(0, struct.pack("<Q", 0))))
write("tracedat-v7-truncated.dat", v7[: len(v7) // 2])
# The real file up to its last options section, which is replaced by a BUFFER option giving
# CPU 0 one appended chunk that declares 60 MiB (zeros: under the old 64 MiB chunk cap).
last = 152702
assert struct.unpack_from("<HHIQ", v7, last)[0] == 0 and v7[last + 16:last + 18] == b"\x03\0"
z = subprocess.run("head -c %d /dev/zero | zstd -19 -q -c --no-check" % (60 << 20), shell=True,
                   check=True, stdout=subprocess.PIPE).stdout
name = b"mmreplay_paired\0local\0"
body_len = 6 + 8 + len(name) + 8 + 20 + 6 + 8
chunk = struct.pack("<III", 1, len(z), 60 << 20) + z
buf = (struct.pack("<Q", 0x235a0) + name + struct.pack("<II", 4096, 1) +
       struct.pack("<IQQ", 0, last + 16 + body_len, len(chunk)))
body = opt(3, buf) + opt(0, struct.pack("<Q", 0))
assert len(body) == body_len
write("tracedat-v7-chunk-60m.dat", v7[:last] + section(0, body) + chunk)
# The same real file whose BUFFER option lists 32 CPUs that all point at one appended chunk
# declaring 4 MiB (MAX_CHUNK_BYTES): CPU 0's first real page, then zeros. Each CPU cursor holds
# its decompressed chunk while its first record waits in the merge: 32 x 4 MiB = 128 MiB before
# the cursors shared a budget (pages.rs CHUNK_BUDGET_BASE + the file's size).
cpu0 = 147456
nchunks, csize0, usize0 = struct.unpack_from("<III", v7, cpu0)
assert nchunks >= 1 and usize0 >= 4096
page0 = subprocess.run(["zstd", "-dcq"], input=v7[cpu0 + 12:cpu0 + 12 + csize0], check=True,
                       stdout=subprocess.PIPE).stdout[:4096]
z = zstd(page0 + b"\0" * ((4 << 20) - 4096))
chunk = struct.pack("<III", 1, len(z), 4 << 20) + z
ncpu = 32
body_len = 6 + 8 + len(name) + 8 + 20 * ncpu + 6 + 8
data_at = last + 16 + body_len
buf = (struct.pack("<Q", 0x235a0) + name + struct.pack("<II", 4096, ncpu) +
       b"".join(struct.pack("<IQQ", c, data_at, len(chunk)) for c in range(ncpu)))
body = opt(3, buf) + opt(0, struct.pack("<Q", 0))
assert len(body) == body_len
write("tracedat-v7-cpus-share-4m-chunk.dat", v7[:last] + section(0, body) + chunk)

# ---- .mmr (replay/tests/hostile) --------------------------------------------------------------
MAGIC = b"MMRCORP\0"
VERSION = 6
# A header length of 1 MiB (the limit) in a 20-byte file.
write("header-len-max.mmr", MAGIC + struct.pack("<II", VERSION, 1 << 20) + b"\0" * 4, MMR_DIR)
# An empty header (bincode of the default header is not empty: decoding fails), then chunks.
# Chunk (v4, v5): tag 1, u32 count, u32 len, u32 plain_len, u64 checksum of the stored bytes,
# stored = zstd of the payload. A chunk of 256 MiB announced in a few bytes: a reader that
# sizes its buffer from `len` holds 256 MiB.
def chunk(count, length, payload=b""):
    return b"\x01" + struct.pack("<IIIQ", count, length, length, 0) + payload


def zstd(bs):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=bs, stdout=subprocess.PIPE,
                          check=True).stdout


def stored_chunk(count, payload):
    z = zstd(payload)
    return b"\x01" + struct.pack("<IIIQ", count, len(z), len(payload), checksum64(z)) + z


M64 = (1 << 64) - 1


def fnv1a64(h, bs):
    for x in bs:
        h ^= x
        h = (h * 0x100000001b3) & M64
    return h


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def checksum64(bs):
    """parsers/src/mmr/mod.rs checksum64."""
    P = 0x9e3779b97f4a7c15
    off = 0xcbf29ce484222325
    lanes = [off, off ^ 1, off ^ 2, off ^ 3]
    nblocks = len(bs) // 32
    for k in range(nblocks):
        for j in range(4):
            w = struct.unpack_from("<Q", bs, 32 * k + 8 * j)[0]
            lanes[j] = rotl(((lanes[j] ^ w) * P) & M64, 29)
    h = fnv1a64(off, bs[32 * nblocks:])
    for lane in lanes:
        h = rotl(((h ^ lane) * P) & M64, 31)
    return h ^ len(bs)


mm = os.environ.get("MMREPLAY", os.path.join(ROOT, "target", "debug", "mmreplay"))
if os.path.exists(mm):
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        src = os.path.join(t, "s.trace")
        with open(src, "wb") as f:
            f.write(HDR + OK_LINE * 3)
        subprocess.run([mm, "compile", src, "-o", os.path.join(t, "s.mmr")], check=True,
                       stdout=subprocess.DEVNULL)
        good = open(os.path.join(t, "s.mmr"), "rb").read()
    hlen = struct.unpack_from("<I", good, 12)[0]
    head = good[:16 + hlen]
    write("chunk-len-huge.mmr", head + chunk(4096, (256 << 20)) + b"\0" * 64, MMR_DIR)
    # A chunk whose (checksummed) payload says its string table has 2^22 entries (a 64 MiB
    # claim, bincode's limit) in 24 bytes.
    # (bincode varint: 0xfc then a u32)
    payload = b"\xfc" + struct.pack("<I", 1 << 22) + b"\0" * 16
    write("chunk-strings-count-huge.mmr", head + stored_chunk(1, payload), MMR_DIR)
    # A real compiled stream cut inside its first chunk.
    write("truncated.mmr", good[: len(head) + 40], MMR_DIR)
    # End marker counting more records than the chunks hold.
    write("end-count-wrong.mmr", good[:-16] + struct.pack("<Q", 1 << 40) + good[-8:], MMR_DIR)
    # 3,000 empty chunks (no records; four empty tables, 32 bytes): each is read and dropped,
    # nothing accumulates; the end marker's checksum then does not match.
    e32 = b"\0" * 4  # four empty tables (varint lengths)
    empty = stored_chunk(0, e32)
    write("many-empty-chunks.mmr", head + empty * 3000 + good[-17:], MMR_DIR)
else:
    print(f"make-hostile: {mm} not built: .mmr files not rewritten")
for d in (HERE, MMR_DIR):
    for n in sorted(os.listdir(d)):
        if not n.endswith(".py"):
            print(f"{os.path.getsize(os.path.join(d, n)):>8} {os.path.join(d, n)}")
