#!/usr/bin/python3
"""cvol.py — an independent reader/writer of the cryolvm volume stream (CVOL 1.0), written
from cryolvm-stream(5) alone, with numpy and the `zstandard` module (Debian
python3-zstandard). Tests use it to check the C library bit for bit and to read tool
output into numpy.

    import cvol
    frames = cvol.read_stream("x.cvol")      # or bytes
    f = frames[0]
    f["data"]    # ndarray, shape (C,Z,Y,X) for ndim 4, (Z,Y,X) for 3, (Y,X) for 2, (X,) for 1
    f["dtype"]   # "float32", ..., "bfloat16" (data then holds the raw uint16 bit patterns)
    f["apix"], f["origin"]   # (x, y, z) tuples in Å
    f["meta"]    # dict, insertion order = stream order
    cvol.write_stream("y.cvol", frames)       # each frame needs data; the rest defaults

Errors raise CvolError with a message naming the problem. Command line:
    cvol.py info FILE            one line per frame
    cvol.py npy FILE OUT.npy     frame 1 data (with --frame N for another)
    cvol.py fromnpy IN.npy OUT.cvol [--apix A] [--chunk BYTES] [--noshuffle] [--meta k=v ...]
"""
import io
import struct
import sys
import zlib

import numpy as np
import zstandard

MAGIC = b"CVOL"
DTYPES = {  # code: (name, numpy dtype of the stored elements)
    1: ("float32", "<f4"),
    2: ("float16", "<f2"),
    3: ("bfloat16", "<u2"),
    4: ("uint8", "u1"),
    5: ("int8", "i1"),
    6: ("int16", "<i2"),
    7: ("uint16", "<u2"),
    8: ("int32", "<i4"),
}
CODE_OF = {name: code for code, (name, _) in DTYPES.items()}
KEY_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")


class CvolError(Exception):
    pass


def _bound(n):
    return n + (n >> 8) + (((128 << 10) - n) >> 11 if n < (128 << 10) else 0)


def shuffle(raw, size):
    """Byte j of element i -> position j*n + i."""
    if size == 1:
        return raw
    a = np.frombuffer(raw, np.uint8).reshape(-1, size)
    return np.ascontiguousarray(a.T).tobytes()


def unshuffle(buf, size):
    if size == 1:
        return buf
    a = np.frombuffer(buf, np.uint8).reshape(size, -1)
    return np.ascontiguousarray(a.T).tobytes()


class _In:
    def __init__(self, data):
        self.b = data
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.b):
            raise CvolError(what)
        out = self.b[self.pos:self.pos + n]
        self.pos += n
        return out


def read_stream(src):
    """Read every frame of a CVOL stream (a path or bytes); raise CvolError on any defect."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        with open(src, "rb") as f:
            data = f.read()
    if not data:
        raise CvolError("empty input")
    if data[:4] != MAGIC[:len(data[:4])]:
        raise CvolError("not a cryolvm stream")
    inp = _In(data)
    hdr = inp.take(16, "stream ends inside its header")
    major, minor, flags, crc = struct.unpack("<HHII", hdr[4:16])
    if major != 1:
        raise CvolError(f"unsupported version {major}.{minor}")
    if zlib.crc32(hdr[:12]) != crc:
        raise CvolError("stream header checksum mismatch")
    if flags & 0xFFFF:
        raise CvolError("unknown required stream flags")
    frames = []
    dctx = zstandard.ZstdDecompressor()
    while True:
        fno = len(frames) + 1
        cut = f"stream ends in the middle of frame {fno}"
        if inp.pos == len(data):
            raise CvolError(f"stream ends after frame {fno - 1} without an end record")
        tag = inp.take(4, "stream ends in the middle of a record")
        if tag == b"CEND":
            rest = inp.take(16, "stream ends in the middle of its end record")
            rec = tag + rest
            _, count, crc = struct.unpack("<IQI", rec[4:20])
            if zlib.crc32(rec[:16]) != crc:
                raise CvolError("end record checksum mismatch")
            if count != len(frames):
                raise CvolError(f"end record says {count} frames, stream held {len(frames)}")
            if inp.pos != len(data):
                raise CvolError("unexpected data after the end-of-stream record")
            return frames
        if tag != b"FRAM":
            raise CvolError(f"unknown record where frame {fno} should start")
        start = inp.pos - 4
        (header_len,) = struct.unpack("<I", inp.take(4, cut))
        if not 120 <= header_len <= 4096:
            raise CvolError(f"frame {fno}: impossible header length {header_len}")
        fixed = tag + struct.pack("<I", header_len) + inp.take(header_len - 8, cut)
        meta_count, meta_bytes = struct.unpack("<II", fixed[112:120])
        if meta_bytes > 16 << 20 or meta_count > 65536:
            raise CvolError(f"frame {fno}: metadata too large")
        meta_raw = inp.take(meta_bytes, cut)
        (hcrc,) = struct.unpack("<I", inp.take(4, cut))
        if zlib.crc32(fixed + meta_raw) != hcrc:
            raise CvolError(f"frame {fno}: header checksum mismatch")
        code, ndim, filt, codec = fixed[8], fixed[9], fixed[10], fixed[11]
        (fflags,) = struct.unpack("<I", fixed[12:16])
        dims = struct.unpack("<4Q", fixed[16:48])
        apix = struct.unpack("<3d", fixed[48:72])
        origin = struct.unpack("<3d", fixed[72:96])
        raw_bytes, chunk_bytes, n_chunks = struct.unpack("<QII", fixed[96:112])
        if code not in DTYPES or codec != 1 or filt not in (0, 1) or fflags & 0xFFFF:
            raise CvolError(f"frame {fno}: unsupported dtype/codec/filter/flags")
        name, npdt = DTYPES[code]
        size = np.dtype(npdt).itemsize
        if not 1 <= ndim <= 4 or any(d < 1 or d >= 1 << 31 for d in dims) or any(
                d != 1 for d in dims[:4 - ndim]):
            raise CvolError(f"frame {fno}: bad shape {dims} ndim {ndim}")
        count = dims[0] * dims[1] * dims[2] * dims[3]
        if count * size > 1 << 36 or raw_bytes != count * size:
            raise CvolError(f"frame {fno}: raw_bytes does not match the shape or exceeds 64 GiB")
        if (chunk_bytes == 0 or chunk_bytes > 256 << 20 or chunk_bytes % size
                or n_chunks != -(-raw_bytes // chunk_bytes)):
            raise CvolError(f"frame {fno}: bad chunking")
        if not all(np.isfinite(apix + origin)):
            raise CvolError(f"frame {fno}: non-finite voxel size or origin")
        meta = {}
        m = _In(meta_raw)
        for _ in range(meta_count):
            bad = f"frame {fno}: bad metadata"
            (kl,) = struct.unpack("<H", m.take(2, bad))
            key = m.take(kl, bad)
            if not 1 <= kl <= 255 or not set(key) <= KEY_CHARS:
                raise CvolError(bad)
            (vl,) = struct.unpack("<I", m.take(4, bad))
            val = m.take(vl, bad)
            if b"\0" in val or key.decode() in meta:
                raise CvolError(bad)
            meta[key.decode()] = val.decode("utf-8", errors="surrogateescape")
        if m.pos != len(meta_raw):
            raise CvolError(f"frame {fno}: stray bytes after the metadata")
        out = bytearray()
        for i in range(n_chunks):
            (cs,) = struct.unpack("<I", inp.take(4, cut))
            n = min(chunk_bytes, raw_bytes - i * chunk_bytes)
            if cs == 0 or cs > _bound(n):
                raise CvolError(f"frame {fno}, chunk {i + 1}: impossible compressed size")
            comp = inp.take(cs, cut)
            try:
                if zstandard.frame_content_size(comp) != n:
                    raise CvolError(f"frame {fno}, chunk {i + 1}: zstd frame does not declare the chunk's size")
                dobj = dctx.decompressobj()
                chunk = dobj.decompress(comp)
            except zstandard.ZstdError as e:
                raise CvolError(f"frame {fno}, chunk {i + 1}: {e}")
            if len(chunk) != n or dobj.unused_data or not dobj.eof:
                raise CvolError(f"frame {fno}, chunk {i + 1}: not one zstd frame of the chunk's size")
            out += unshuffle(chunk, size) if filt == 1 else chunk
        (tcrc,) = struct.unpack("<I", inp.take(4, cut))
        if zlib.crc32(data[start:inp.pos - 4]) != tcrc:
            raise CvolError(f"frame {fno}: data checksum mismatch")
        shape = tuple(int(d) for d in dims[4 - ndim:])
        arr = np.frombuffer(bytes(out), npdt).reshape(shape)
        frames.append({"data": arr.astype(arr.dtype.newbyteorder("=")), "dtype": name, "apix": apix,
                       "origin": origin, "meta": meta, "ndim": ndim})


def _frame_bytes(fr, level, chunk, do_shuffle):
    data = np.asarray(fr["data"])
    name = fr.get("dtype") or {"float32": "float32", "float16": "float16", "uint8": "uint8", "int8": "int8",
                               "int16": "int16", "uint16": "uint16", "int32": "int32"}.get(data.dtype.name)
    if name not in CODE_OF:
        raise CvolError(f"dtype {data.dtype} has no CVOL code (convert, or say dtype='bfloat16')")
    code = CODE_OF[name]
    npdt = np.dtype(DTYPES[code][1])
    if data.dtype.itemsize != npdt.itemsize:
        raise CvolError(f"data of {data.dtype} cannot be stored as {name}")
    ndim = data.ndim
    if not 1 <= ndim <= 4:
        raise CvolError("ndim must be 1..4")
    dims = (1,) * (4 - ndim) + tuple(data.shape)
    raw = np.ascontiguousarray(data).astype(npdt if name != "bfloat16" else "<u2", copy=False).tobytes()
    size = npdt.itemsize
    filt = 1 if (do_shuffle and size > 1) else 0
    cb = max(size, chunk - chunk % size)
    cb = min(cb, len(raw))
    n_chunks = -(-len(raw) // cb)
    meta = fr.get("meta", {}) or {}
    mb = b""
    for k, v in meta.items():
        kb = k.encode()
        vb = v if isinstance(v, bytes) else str(v).encode("utf-8", errors="surrogateescape")
        if not 1 <= len(kb) <= 255 or not set(kb) <= KEY_CHARS or b"\0" in vb:
            raise CvolError(f"bad metadata key or value: {k!r}")
        mb += struct.pack("<H", len(kb)) + kb + struct.pack("<I", len(vb)) + vb
    apix = tuple(float(a) for a in fr.get("apix", (1.0, 1.0, 1.0)))
    origin = tuple(float(a) for a in fr.get("origin", (0.0, 0.0, 0.0)))
    fixed = (b"FRAM" + struct.pack("<I", 120) + bytes([code, ndim, filt, 1]) + struct.pack("<I", 0)
             + struct.pack("<4Q", *dims) + struct.pack("<3d", *apix) + struct.pack("<3d", *origin)
             + struct.pack("<QIIII", len(raw), cb, n_chunks, len(meta), len(mb)))
    assert len(fixed) == 120
    hdr = fixed + mb
    rec = io.BytesIO()
    rec.write(hdr + struct.pack("<I", zlib.crc32(hdr)))
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    for i in range(n_chunks):
        piece = raw[i * cb:(i + 1) * cb]
        comp = cctx.compress(shuffle(piece, size) if filt else piece)
        rec.write(struct.pack("<I", len(comp)) + comp)
    body = rec.getvalue()
    return body + struct.pack("<I", zlib.crc32(body))


def write_stream(path, frames, level=3, chunk=4 << 20, shuffle=True):
    """Write frames (dicts with data and optional dtype, apix, origin, meta) to path, or
    return the bytes when path is None."""
    hdr = MAGIC + struct.pack("<HHI", 1, 0, 0)
    parts = [hdr + struct.pack("<I", zlib.crc32(hdr))]
    for fr in frames:
        parts.append(_frame_bytes(fr, level, chunk, shuffle))
    end = b"CEND" + struct.pack("<IQ", 0, len(frames))
    parts.append(end + struct.pack("<I", zlib.crc32(end)))
    blob = b"".join(parts)
    if path is None:
        return blob
    with open(path, "wb") as f:
        f.write(blob)
    return None


def bf16_to_f32(bits):
    return (np.asarray(bits, np.uint32) << 16).view(np.float32)


def _main(argv):
    if len(argv) >= 2 and argv[0] == "info":
        for i, f in enumerate(read_stream(argv[1]), 1):
            d = f["data"]
            print(f"frame {i}: {f['dtype']} {'x'.join(map(str, d.shape))} apix {f['apix']} "
                  f"origin {f['origin']} meta {len(f['meta'])}")
        return 0
    if len(argv) >= 3 and argv[0] == "npy":
        n = int(argv[argv.index("--frame") + 1]) if "--frame" in argv else 1
        np.save(argv[2], read_stream(argv[1])[n - 1]["data"])
        return 0
    if len(argv) >= 3 and argv[0] == "fromnpy":
        fr = {"data": np.load(argv[1]), "meta": {}}
        chunk, shuf, i = 4 << 20, True, 3
        while i < len(argv):
            if argv[i] == "--apix":
                fr["apix"] = (float(argv[i + 1]),) * 3
                i += 2
            elif argv[i] == "--chunk":
                chunk = int(argv[i + 1])
                i += 2
            elif argv[i] == "--noshuffle":
                shuf = False
                i += 1
            elif argv[i] == "--meta":
                k, v = argv[i + 1].split("=", 1)
                fr["meta"][k] = v
                i += 2
            else:
                raise SystemExit(f"cvol.py: unknown option {argv[i]}")
        write_stream(argv[2], [fr], chunk=chunk, shuffle=shuf)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except CvolError as e:
        print(f"cvol.py: {e}", file=sys.stderr)
        sys.exit(1)
