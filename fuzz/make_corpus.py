#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid inputs of
each format, plus a few near-misses, from which libFuzzer mutates. Needs Pillow and numpy.
Run from anywhere: python3 fuzz/make_corpus.py"""
import base64
import gzip
import io
import json
import pathlib
import struct

import numpy as np
from PIL import Image

root = pathlib.Path(__file__).resolve().parent / "corpus"
rng = np.random.default_rng(0)


def put(target, name, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


f32 = lambda a: ("F32", list(a.shape), a.astype("<f4").tobytes())
put("safetensors", "two_f32", safetensors({"w": f32(rng.standard_normal((3, 4))), "b": f32(rng.standard_normal(4))}))
put("safetensors", "dtypes", safetensors({
    "h": ("F16", [2, 2], np.ones(4, "<f2").tobytes()),
    "bf": ("BF16", [3], b"\x80\x3f" * 3),
    "i": ("I64", [2], np.arange(2, dtype="<i8").tobytes()),
    "u": ("U8", [5], bytes(range(5))),
    "scalar": ("F64", [], struct.pack("<d", 1.5)),
    "empty": ("F32", [0, 3], b""),
}, {"config": json.dumps({"experts": 4}), "step": "12"}))
put("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
# Regression: an empty tensor at a misaligned offset (the reader once passed memcpy a null buffer).
put("safetensors", "empty_misaligned", safetensors({"u": ("U8", [1], b"\x05"), "e": ("F32", [0, 3], b"")}))

images = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
labels = np.array([1, 7, 3], np.uint8)
idx_images = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 3, 4, 5) + images.tobytes()
idx_labels = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 3) + labels.tobytes()
framed = lambda lab, img: struct.pack("<I", len(lab)) + lab + img
put("idx", "raw", framed(idx_labels, idx_images))
put("idx", "gzip", framed(gzip.compress(idx_labels, mtime=0), gzip.compress(idx_images, mtime=0)))
rgb = struct.pack(">BBBB", 0, 0, 8, 4) + struct.pack(">IIII", 3, 2, 2, 3) + bytes(range(36))
put("idx", "rgb", framed(idx_labels, rgb))

records10 = b"".join(bytes([k]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for k in (3, 9))
records100 = b"".join(bytes([c, f]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for c, f in ((4, 99), (19, 0)))
put("cifar", "cifar10", b"\x00" + records10)
put("cifar", "cifar100_fine", b"\x01" + records100)
put("cifar", "cifar100_coarse", b"\x03" + records100)


def encoded(fmt, mode, size, **kw):
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


put("image", "rgb.jpg", b"\x00" + encoded("JPEG", "RGB", (13, 9), quality=80))
put("image", "grey_progressive.jpg", b"\x01" + encoded("JPEG", "L", (8, 8), progressive=True))
put("image", "rgb.png", b"\x00" + encoded("PNG", "RGB", (7, 5)))
put("image", "rgba_interlaced.png", b"\x01" + encoded("PNG", "RGBA", (6, 6), interlace=1))
put("image", "palette.png", b"\x00" + encoded("PNG", "P", (5, 3)))
put("image", "rgb.bmp", b"\x00" + encoded("BMP", "RGB", (4, 3)))
jpg = encoded("JPEG", "RGB", (16, 16))
put("image", "truncated.jpg", b"\x00" + jpg[: len(jpg) // 2])
# Regression: a Huffman table declaring more than 256 codes (Debian's stb_image overflows its
# tables on it; the reader refuses it first).
dht = jpg.index(b"\xff\xc4")
put("image", "dht_overflow.jpg", b"\x00" + jpg[: dht + 19] + b"\xff\xff" + jpg[dht + 21:])

# Regression: a 67-byte BMP declaring 1,048,580 x 91 pixels (once decoded into 286 MB of zeros).
put("image", "bmp_dishonest_header", base64.b64decode(
    "AEJNWgAAAAAAAAA2AAAAKAAAAAQAEABbAAAAAQAYAAAAAAAkAAAAxA4AAMQOAAAAAAAAAAAAAB9222dcxOL8cE1pBQ=="))

put("config", "demo.toml", b'model = "vit_tiny"\nexperts = 4\nepochs = 2\nlr = 5e-4\nshared-expert = true\n'
    b'moe-blocks = [2, 3]\ndataset = "folder"\n')
put("config", "unknown_key.toml", b"expertz = 4\n")
put("config", "table.toml", b"[model]\nexperts = 4\n")
put("config", "types.toml", b'drop-path = 0.1\nmodel = """multi\nline"""\nepochs = 0x10\n# comment\n')
