"""Test helper: a small PNG decoder (8-bit RGB/RGBA, not interlaced), enough to read a browser's screenshot."""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type → samples per pixel


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG file")
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length :][:4])[0]:
            raise ValueError(f"damaged {kind!r} chunk")
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def _averaged(line: list[int], prior: list[int], bpp: int) -> list[int]:
    row = list(line)
    for x in range(len(row)):
        left = row[x - bpp] if x >= bpp else 0
        row[x] = (row[x] + (left + prior[x]) // 2) & 0xFF
    return row


def _paeth(line: list[int], prior: list[int], bpp: int) -> list[int]:
    row = list(line)
    for x in range(len(row)):
        a = row[x - bpp] if x >= bpp else 0
        b = prior[x]
        c = prior[x - bpp] if x >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return row


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of a PNG as an array of (height, width, channels) uint8."""
    chunks = _chunks(data)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if chunks[0][0] != b"IHDR" or depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = _CHANNELS[colour]
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")), np.uint8)
    rows = raw.reshape(height, stride + 1)
    pixels = np.empty((height, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:  # Sub: a running sum along each channel (uint8 arithmetic wraps as PNG's does)
            current = line.reshape(width, bpp).cumsum(axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:
            current = line + prior
        elif kind == 3:
            current = np.array(_averaged(line.tolist(), prior.tolist(), bpp), np.uint8)
        elif kind == 4:
            current = np.array(_paeth(line.tolist(), prior.tolist(), bpp), np.uint8)
        else:
            raise ValueError(f"row {y}: unknown filter {kind}")
        pixels[y] = current
        prior = current
    return pixels.reshape(height, width, bpp)


def colour_pixels(image: np.ndarray, colour: str, tolerance: int = 2) -> int:
    """How many pixels of `image` have the colour `#rrggbb`, each channel within `tolerance`."""
    wanted = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.int16)
    return int((np.abs(image[..., :3].astype(np.int16) - wanted) <= tolerance).all(axis=-1).sum())
