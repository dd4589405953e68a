"""Protobuf wire format (``.caffemodel``, ``.solverstate``, ``.binaryproto``) reader and writer.

Reader (:func:`decode`): accepts fields in any order, repeated occurrences (sub-messages merge, singular
scalars: last wins), packed and unpacked repeated scalars, and skips fields it does not know (files from
other Caffe builds carry them) as well as known fields sent with an unexpected wire type, exactly like
protobuf's C++ parser. ``BlobProto.data``/``diff`` decode to 1-D float32 numpy arrays and
``double_data``/``double_diff`` to float64 ones (``numpy.frombuffer``, so a 2 MB model decodes in a few
milliseconds). Truncated or malformed input raises :class:`~crfrnn_np.errors.ParseError` with the byte
offset and the field path, e.g. ``"w.caffemodel: byte 1234: truncated length-delimited field (in
NetParameter.layer[1].blobs[0].data)"``.

Writer (:func:`encode`): fields in field-number order, the present ones only, packed where caffe.proto
says ``[packed = true]`` (BlobProto float arrays, BlobShape.dim), negative ints as 10-byte varints.
"""
import struct

import numpy as np

from crfrnn_np.errors import ParseError, SchemaError

from .message import ENUMS, INT_RANGES, SCHEMA, Message, read_bytes
from .schema import WIRE_ALIASES
from .text_format import to_float32

#: ``(message type, field name)`` decoded to numpy arrays instead of lists.
NUMPY_FIELDS = {("BlobProto", "data"), ("BlobProto", "diff"), ("BlobProto", "double_data"),
                ("BlobProto", "double_diff")}

_VARINT_KINDS = frozenset(("int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"))
_WIRE_TYPE = {"float": 5, "double": 1, "string": 2, "bytes": 2, "message": 2}
_MASK64 = (1 << 64) - 1


def _wire_type(kind):
    return 0 if kind in _VARINT_KINDS else _WIRE_TYPE[kind]


class _WireError(Exception):
    """Internal: a malformed byte at ``offset``; turned into a ParseError with the field path."""

    def __init__(self, offset, msg):
        super().__init__(msg)
        self.offset, self.msg = offset, msg


# -- reader -----------------------------------------------------------------------------------------------------
def _read_varint(buf, pos, end):
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _WireError(start, "truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise _WireError(start, "malformed varint (more than 10 bytes)")


def _varint_value(kind, v):
    if kind in ("int32", "enum"):
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >= 1 << 31 else v
    if kind == "int64":
        return v - (1 << 64) if v >= 1 << 63 else v
    if kind == "uint32":
        return v & 0xFFFFFFFF
    if kind == "bool":
        return v != 0
    if kind == "sint32":
        v &= 0xFFFFFFFF
        return (v >> 1) ^ -(v & 1)
    if kind == "sint64":
        return (v >> 1) ^ -(v & 1)
    return v


def _skip_field(buf, pos, end, wt, number, depth=0):
    if wt == 0:
        return _read_varint(buf, pos, end)[1]
    if wt == 1:
        size = 8
    elif wt == 5:
        size = 4
    elif wt == 2:
        start = pos
        size, pos = _read_varint(buf, pos, end)
        if pos + size > end:
            raise _WireError(start, "truncated length-delimited field (%d bytes declared, %d left)"
                             % (size, end - pos))
        return pos + size
    elif wt == 3:
        if depth > 64:
            raise _WireError(pos, "groups nested too deeply")
        while True:
            key_pos = pos
            key, pos = _read_varint(buf, pos, end)
            if key & 7 == 4:
                if key >> 3 != number:
                    raise _WireError(key_pos, "mismatched end-group tag")
                return pos
            pos = _skip_field(buf, pos, end, key & 7, key >> 3, depth + 1)
    elif wt == 4:
        raise _WireError(pos, "unexpected end-group tag")
    else:
        raise _WireError(pos, "invalid wire type %d" % wt)
    if pos + size > end:
        raise _WireError(pos, "truncated %d-byte field" % size)
    return pos + size


def _decode_scalar(fdef, wt, buf, pos, end):
    """One (non-packed) scalar value of ``fdef`` starting at ``pos``; returns ``(value, new pos)``."""
    kind = fdef.kind
    if wt == 0:
        v, pos = _read_varint(buf, pos, end)
        return _varint_value(kind, v), pos
    if wt == 5:
        if pos + 4 > end:
            raise _WireError(pos, "truncated 32-bit value")
        return struct.unpack_from("<f", buf, pos)[0], pos + 4
    if wt == 1:
        if pos + 8 > end:
            raise _WireError(pos, "truncated 64-bit value")
        return struct.unpack_from("<d", buf, pos)[0], pos + 8
    start = pos
    size, pos = _read_varint(buf, pos, end)
    if pos + size > end:
        raise _WireError(start, "truncated string (%d bytes declared, %d left)" % (size, end - pos))
    data = bytes(buf[pos:pos + size])
    return (data if kind == "bytes" else data.decode("utf-8", "surrogateescape")), pos + size


def _decode_packed(fdef, buf, pos, end):
    """Elements of a packed repeated scalar in ``buf[pos:end]`` as a list (or numpy array for floats)."""
    kind = fdef.kind
    if kind in ("float", "double"):
        width = 4 if kind == "float" else 8
        if (end - pos) % width:
            raise _WireError(pos, "packed %s array of %d bytes is not a multiple of %d" % (kind, end - pos, width))
        dtype = "<f4" if kind == "float" else "<f8"
        arr = np.frombuffer(buf, dtype=dtype, count=(end - pos) // width, offset=pos)
        return arr.astype(np.float32 if kind == "float" else np.float64)
    out = []
    while pos < end:
        v, pos = _read_varint(buf, pos, end)
        out.append(_varint_value(kind, v))
    return out


def _append_values(msg, fdef, values, as_numpy):
    name = fdef.name
    store = msg._values
    if as_numpy:
        new = np.asarray(values, dtype=np.float32 if fdef.kind == "float" else np.float64)
        old = store.get(name)
        store[name] = new if old is None or len(old) == 0 else np.concatenate([np.asarray(old, new.dtype), new])
        return
    if isinstance(values, np.ndarray):
        values = values.tolist()
    lst = store.get(name)
    if lst is None:
        lst = store[name] = []
    lst.extend(values)


def _decode_into(msg, buf, pos, end, path, filename, depth):
    mtype = msg.message_type
    by_number = mtype.by_number
    store = msg._values
    fdef = None
    try:
        if depth > 100:
            raise _WireError(pos, "messages nested too deeply")
        while pos < end:
            fdef = None
            key_pos = pos
            key, pos = _read_varint(buf, pos, end)
            number, wt = key >> 3, key & 7
            if number == 0:
                raise _WireError(key_pos, "invalid field number 0")
            fdef = by_number.get(number)
            if fdef is None:
                alias = WIRE_ALIASES.get((mtype.name, number))
                fdef = mtype.fields[alias] if alias else None
            if fdef is None:
                pos = _skip_field(buf, pos, end, wt, number)
                continue
            kind = fdef.kind
            if kind == "message":
                if wt != 2:
                    pos = _skip_field(buf, pos, end, wt, number)
                    continue
                size, pos = _read_varint(buf, pos, end)
                if pos + size > end:
                    raise _WireError(key_pos, "truncated message (%d bytes declared, %d left)" % (size, end - pos))
                if fdef.repeated:
                    lst = store.setdefault(fdef.name, [])
                    sub = Message(fdef.type_name)
                    sub_path = "%s.%s[%d]" % (path, fdef.name, len(lst))
                    _decode_into(sub, buf, pos, pos + size, sub_path, filename, depth + 1)
                    lst.append(sub)
                else:
                    sub = store.get(fdef.name)
                    if sub is None:
                        sub = Message(fdef.type_name)
                    _decode_into(sub, buf, pos, pos + size, "%s.%s" % (path, fdef.name), filename, depth + 1)
                    store[fdef.name] = sub
                pos += size
                continue
            expected = _wire_type(kind)
            if fdef.repeated and wt == 2 and expected != 2:
                size, pos = _read_varint(buf, pos, end)
                if pos + size > end:
                    raise _WireError(key_pos, "truncated packed field (%d bytes declared, %d left)"
                                     % (size, end - pos))
                values = _decode_packed(fdef, buf, pos, pos + size)
                pos += size
            elif wt == expected:
                value, pos = _decode_scalar(fdef, wt, buf, pos, end)
                values = [value]
            else:
                pos = _skip_field(buf, pos, end, wt, number)
                continue
            if kind == "enum":
                names = ENUMS[fdef.type_name].names
                values = [names[v] for v in values if v in names]
                if not values:
                    continue
            elif kind == "float" and not isinstance(values, np.ndarray):
                values = [to_float32(v) for v in values]
            if fdef.repeated:
                _append_values(msg, fdef, values, (mtype.name, fdef.name) in NUMPY_FIELDS)
            else:
                store[fdef.name] = values[-1]
        if pos != end:
            raise _WireError(end, "field runs past the end of its enclosing message")
        fdef = None
        for f in mtype.fields.values():
            if f.label == "required" and f.name not in store:
                raise _WireError(end, "missing required field '%s'" % f.name)
    except _WireError as e:
        where = path if fdef is None else "%s.%s" % (path, fdef.name)
        raise ParseError("%s: byte %d: %s (in %s)" % (filename, e.offset, e.msg, where)) from None


def decode(data, type_name="NetParameter", filename=None):
    """Decode protobuf wire-format bytes into a :class:`Message`.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
    type_name : str
        Schema type of the top-level message (``"NetParameter"``, ``"SolverState"``, ``"BlobProto"`` ...).
    filename : str, optional
        Named in error messages (``"<bytes>"`` when not given).

    Returns
    -------
    Message
        ``BlobProto`` float arrays are 1-D numpy arrays (float32 for data/diff, float64 for double_*).

    Raises
    ------
    ParseError
        Truncated or malformed input, with the byte offset and the path of the field being read.
    """
    filename = "<bytes>" if filename is None else str(filename)
    if type_name not in SCHEMA:
        raise SchemaError("%s: unknown message type '%s'" % (filename, type_name))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParseError("%s: expected bytes, got %s" % (filename, type(data).__name__))
    buf = bytes(data)
    msg = Message(type_name)
    _decode_into(msg, buf, 0, len(buf), type_name, filename, 0)
    return msg


def read_binary(path, type_name="NetParameter"):
    """Read and decode a wire-format file (``.caffemodel``, ``.solverstate``, ``.binaryproto``)."""
    return decode(read_bytes(path), type_name, filename=str(path))


# -- writer -----------------------------------------------------------------------------------------------------
def _varint_bytes(v):
    v &= _MASK64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _varint_of(fdef, value):
    kind = fdef.kind
    if kind == "enum":
        if not isinstance(value, str):
            value = ENUMS[fdef.type_name].names[int(value)]
        return ENUMS[fdef.type_name].values[value]
    if kind == "bool":
        return 1 if value else 0
    v = int(value)
    lo, hi = INT_RANGES[kind]
    if not lo <= v <= hi:
        raise ValueError("%d is out of range for %s" % (v, kind))
    if kind == "sint32":
        return ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF
    if kind == "sint64":
        return ((v << 1) ^ (v >> 63)) & _MASK64
    return v


def _scalar_payload(fdef, value):
    kind = fdef.kind
    if kind == "float":
        return struct.pack("<f", to_float32(float(value)))
    if kind == "double":
        return struct.pack("<d", float(value))
    if kind in ("string", "bytes"):
        data = value if isinstance(value, (bytes, bytearray)) else value.encode("utf-8", "surrogateescape")
        return _varint_bytes(len(data)) + bytes(data)
    return _varint_bytes(_varint_of(fdef, value))


def _encode(msg, path):
    out = []
    for fdef in sorted(msg.message_type.fields.values(), key=lambda f: f.number):
        name = fdef.name
        if not msg.has(name):
            if fdef.label == "required":
                raise SchemaError("cannot encode %s: missing required field '%s'" % (path, name))
            continue
        value = msg._values[name]
        kind = fdef.kind
        try:
            if kind == "message":
                key = _varint_bytes((fdef.number << 3) | 2)
                subs = value if fdef.repeated else [value]
                for i, sub in enumerate(subs):
                    sub_path = "%s.%s[%d]" % (path, name, i) if fdef.repeated else "%s.%s" % (path, name)
                    payload = _encode(sub, sub_path)
                    out.append(key + _varint_bytes(len(payload)))
                    out.append(payload)
            elif fdef.repeated and fdef.packed:
                if kind in ("float", "double"):
                    payload = np.asarray(value, dtype="<f4" if kind == "float" else "<f8").ravel().tobytes()
                else:
                    payload = b"".join(_varint_bytes(_varint_of(fdef, v)) for v in value)
                out.append(_varint_bytes((fdef.number << 3) | 2) + _varint_bytes(len(payload)))
                out.append(payload)
            else:
                key = _varint_bytes((fdef.number << 3) | _wire_type(kind))
                for v in (value if fdef.repeated else [value]):
                    out.append(key + _scalar_payload(fdef, v))
        except SchemaError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            raise SchemaError("cannot encode %s.%s (%s): %s" % (path, name, kind, e)) from None
    return b"".join(out)


def encode(msg):
    """Serialize a :class:`Message` to protobuf wire-format bytes (fields in number order).

    Raises
    ------
    SchemaError
        A required field is missing or a value does not fit its field's type.
    """
    return _encode(msg, msg.type_name)
