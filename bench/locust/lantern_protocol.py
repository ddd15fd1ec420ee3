"""Lantern protocol v1 frames in Python: msgpack encode/decode that matches protocol/codec.ts.

Encoding (what the server emits and PROTOCOL.md section 2 asks clients to emit):
  - integers always as msgpack ints in their smallest form, never floats, even above 2^32;
    a float holding a safe whole number (3.0) is an int too, because the TypeScript codec cannot
    tell 3.0 from 3; other floats as float64; NaN and infinities are refused;
  - strings with the smallest str header; a lone surrogate is written as U+FFFD, as TextEncoder does;
  - bytes as bin; maps in insertion order; None as nil (leave an absent optional field out).
  JavaScript objects list integer-like keys ("2") first; dicts keep insertion order. Key order
  carries no meaning (section 2), so this matters only when comparing bytes with such keys.

Decoding refuses what codec.ts refuses, all as LanternFrameError (the server's `bad_frame`):
one map with no trailing bytes, no extension types (the timestamp included), no 0xc1, str keys
only, no duplicate or forbidden keys, valid UTF-8, safe integers, finite floats, and the
structural limits of section 13.1. msgpack's C unpacker does the parsing and the cheap checks;
one walk over the result does the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

MAX_SAFE_INTEGER = 2**53 - 1
FORBIDDEN_KEYS = frozenset(('__proto__', '__proto_', 'constructor', 'prototype'))


@dataclass(frozen=True)
class FrameLimits:
    """PROTOCOL.md section 13.1, with the same defaults as protocol/limits.ts."""
    max_frame_bytes: int = 65536
    max_depth: int = 8
    max_string_length: int = 16384  # UTF-16 code units
    max_array_length: int = 1024
    max_map_keys: int = 4096
    max_binary_bytes: int = 32768


DEFAULT_LIMITS = FrameLimits()


class LanternFrameError(ValueError):
    """A frame the protocol refuses (`bad_frame`)."""
    error = 'bad_frame'


# ---------------------------------------------------------------- encode

def _to_wire(value: Any) -> Any:
    """The value msgpack should pack so the bytes equal codec.ts's, or a TypeError."""
    kind = type(value)
    if kind is str:
        try:
            value.encode('utf-8')
            return value
        except UnicodeEncodeError:  # lone surrogates: TextEncoder writes U+FFFD
            return ''.join('\ufffd' if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if kind is bool or value is None or kind is bytes:
        return value
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise TypeError(f'cannot encode {value}: frames carry safe integers only (|n| <= 2^53-1)')
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f'cannot encode {value}: frames carry finite numbers only')
        if value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)  # -0.0 too: JavaScript writes it as the int 0
        return value
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f'cannot encode a map key of type {type(k).__name__}: keys are strings')
            out[_to_wire(k)] = _to_wire(v)
        return out
    if kind is list or kind is tuple:
        return [_to_wire(v) for v in value]
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    raise TypeError(f'cannot encode a {kind.__name__}')


def encode_frame(frame: dict) -> bytes:
    """One frame's bytes, exactly as protocol/codec.ts encodes the same value."""
    if type(frame) is not dict:
        raise TypeError('a frame is a dict')
    # use_single_float=False: float64; use_bin_type=True: str/bin headers as in msgpack 2.0.
    return msgpack.packb(_to_wire(frame), use_bin_type=True, use_single_float=False, strict_types=True)


# ---------------------------------------------------------------- decode

def _bad(message: str) -> LanternFrameError:
    return LanternFrameError(message)


def _refuse_extension(code: int, data: bytes) -> Any:
    raise _bad(f'msgpack extension types are not allowed (type {code})')


def _map_of(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _bad(f'duplicate key "{k}"')
            seen.add(k)
    for k in out:
        if type(k) is not str:
            raise _bad(f'map keys must be strings (found {type(k).__name__})')
        if k in FORBIDDEN_KEYS:
            raise _bad(f'forbidden key "{k}"')
    return out


def _utf16_length(s: str) -> int:
    if s.isascii():
        return len(s)
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def _check(value: Any, depth: int, lim: FrameLimits) -> None:
    """What msgpack's unpacker does not check: depth, safe ints, finite floats, UTF-16 lengths, timestamps."""
    kind = type(value)
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _bad(f'integer {value} outside the safe range (|n| > 2^53-1)')
    elif kind is str:
        if len(value) > lim.max_string_length // 2 and _utf16_length(value) > lim.max_string_length:
            raise _bad(f'string longer than maxStringLength {lim.max_string_length}')
    elif kind is float:
        if not math.isfinite(value):
            raise _bad('numbers must be finite (no NaN or Infinity)')
    elif kind is dict:
        if depth > lim.max_depth:
            raise _bad(f'nesting deeper than maxDepth {lim.max_depth}')
        for k, v in value.items():
            _check(k, depth + 1, lim)
            _check(v, depth + 1, lim)
    elif kind is list:
        if depth > lim.max_depth:
            raise _bad(f'nesting deeper than maxDepth {lim.max_depth}')
        for v in value:
            _check(v, depth + 1, lim)
    elif kind is bytes or kind is bool or value is None:
        pass
    else:  # msgpack.Timestamp: ext -1 is decoded without asking ext_hook
        raise _bad(f'msgpack extension types are not allowed ({kind.__name__})')


def decode_frame(data: bytes, limits: FrameLimits = DEFAULT_LIMITS) -> dict:
    """Decode and structurally validate one frame; raises LanternFrameError."""
    if len(data) > limits.max_frame_bytes:
        raise _bad(f'frame of {len(data)} bytes exceeds maxFrameBytes {limits.max_frame_bytes}')
    if len(data) == 0:
        raise _bad('empty frame')
    first = data[0]
    if not ((first & 0xF0) == 0x80 or first in (0xDE, 0xDF)):
        raise _bad('a frame must be a msgpack map')
    try:
        frame = msgpack.unpackb(
            data, raw=False, strict_map_key=False, object_pairs_hook=_map_of, ext_hook=_refuse_extension,
            # Byte bounds msgpack checks before allocating; the exact UTF-16 bound is _check's.
            max_str_len=3 * limits.max_string_length, max_bin_len=limits.max_binary_bytes,
            max_array_len=limits.max_array_length, max_map_len=limits.max_map_keys,
        )
    except LanternFrameError:
        raise
    except msgpack.ExtraData as err:
        raise _bad(f'{len(err.extra)} trailing byte(s) after the frame') from None
    except UnicodeDecodeError as err:
        raise _bad(f'a string is not valid UTF-8 ({err.reason})') from None
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # truncated, 0xc1, limits
        raise _bad(f'not a valid msgpack frame: {err}') from None
    _check(frame, 1, limits)
    return frame
