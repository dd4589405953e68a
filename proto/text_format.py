"""Protobuf text format (``.prototxt``) reader and writer for the schema in ``schema.py``.

The grammar is the one Caffe accepts through protobuf's ``TextFormat::Parse`` (spec ``caffe.md`` 1.0):
``#`` comments, an optional ``:`` before ``{``, ``<...>`` blocks, single or double quoted strings with C
escapes and concatenation of adjacent literals, repeated fields by repetition or ``[a, b]`` lists, enums by
name or number, decimal/hex/octal integers, float literals such as ``1e-3``, ``.5``, ``5.``, ``0.65f``,
``inf``/``nan``, optional ``,`` or ``;`` after a field. A singular field given twice, an unknown field, an
unknown enum value, an integer out of range and a missing ``required`` field are errors.

Every error is a :class:`~crfrnn_np.errors.ParseError` (syntax) or :class:`~crfrnn_np.errors.SchemaError`
(schema) whose message starts with ``file:line:col:`` (1-based, the filename ``<string>`` when none is given)
and names the offending token. Every field read records its position with ``Message.set_where`` and every
sub-message its own (``set_where(None, ...)``).
"""
import bisect
import math
import re

import numpy as np

from crfrnn_np.errors import ParseError, SchemaError

from .message import ENUMS, INT_RANGES, SCHEMA, Message, read_bytes

_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n\v\f]+)
  | (?P<comment>\#[^\n]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<float>(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?|[0-9]+[eE][+-]?[0-9]+[fF]?|[0-9]+[fF])
  | (?P<int>0[xX][0-9A-Fa-f]+|[0-9]+)
  | (?P<string>"(?:[^"\\\n]|\\[^\n])*"|'(?:[^'\\\n]|\\[^\n])*')
  | (?P<sym>[{}<>:\[\],;\-])
""", re.X)

_ESCAPE_RE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.S)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v",
                   "?": b"?", "\\": b"\\", "'": b"'", '"': b'"'}

_TRUE = ("true", "True", "t")
_FALSE = ("false", "False", "f")
_CLOSE = {"{": "}", "<": ">"}
EOF = "eof"


def to_float32(value):
    """Round a Python float to the nearest float32 (overflow gives +-inf), as a Python float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def _tokenize(text):
    """Split ``text`` into ``(kinds, texts, offsets)``; a lexical error becomes a final ``"error"`` token."""
    kinds, texts, offsets = [], [], []
    pos, n = 0, len(text)
    match = _TOKEN_RE.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            c = text[pos]
            if c in "\"'":
                msg = "unterminated string literal (strings may not contain a raw newline)"
            else:
                msg = "invalid character %r" % c
            kinds.append("error"), texts.append(msg), offsets.append(pos)
            return kinds, texts, offsets
        kind = m.lastgroup
        end = m.end()
        if kind in ("float", "int"):
            if end < n and (text[end].isalnum() or text[end] in "_."):
                kinds.append("error"), offsets.append(pos)
                texts.append("need space between number %r and the following %r" % (m.group(), text[end]))
                return kinds, texts, offsets
            tok = m.group()
            if kind == "int" and len(tok) > 1 and tok[0] == "0" and tok[1] not in "xX" \
                    and not all(c in "01234567" for c in tok):
                kinds.append("error"), offsets.append(pos)
                texts.append("number %r starts with 0 but is not a valid octal number" % tok)
                return kinds, texts, offsets
        if kind not in ("ws", "comment"):
            kinds.append(kind), texts.append(m.group()), offsets.append(pos)
        pos = end
    kinds.append(EOF), texts.append(""), offsets.append(n)
    return kinds, texts, offsets


class _Parser:
    def __init__(self, text, filename):
        self.text = text
        self.filename = filename
        self.kinds, self.texts, self.offsets = _tokenize(text)
        self.i = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- positions and errors -------------------------------------------------------------------------------
    def loc(self, idx=None):
        offset = self.offsets[self.i if idx is None else idx]
        line = bisect.bisect_right(self.line_starts, offset)
        return "%s:%d:%d" % (self.filename, line, offset - self.line_starts[line - 1] + 1)

    def describe(self, idx=None):
        idx = self.i if idx is None else idx
        if self.kinds[idx] == EOF:
            return "end of input"
        return "'%s'" % self.texts[idx]

    def fail(self, msg, idx=None, cls=ParseError):
        idx = self.i if idx is None else idx
        if self.kinds[idx] == "error":
            cls, msg = ParseError, self.texts[idx]
        raise cls("%s: %s" % (self.loc(idx), msg))

    # -- token helpers --------------------------------------------------------------------------------------
    def is_sym(self, sym):
        return self.kinds[self.i] == "sym" and self.texts[self.i] == sym

    def accept(self, sym):
        if self.is_sym(sym):
            self.i += 1
            return True
        return False

    def expect(self, sym, what):
        if not self.accept(sym):
            self.fail("expected '%s' %s, found %s" % (sym, what, self.describe()))

    # -- grammar --------------------------------------------------------------------------------------------
    def parse_top(self, msg):
        msg.set_where(None, "%s:1:1" % self.filename)
        self.parse_body(msg, None, None)
        self.check_required(msg, None)

    def parse_body(self, msg, close, open_idx):
        mtype = msg.message_type
        seen = set()
        while True:
            kind = self.kinds[self.i]
            if kind == "sym" and close is not None and self.texts[self.i] == close:
                self.i += 1
                return
            if kind == EOF:
                if close is None:
                    return
                self.fail("unexpected end of input: missing '%s' to close the block opened at %s"
                          % (close, self.loc(open_idx)))
            if kind != "ident":
                if kind == "sym" and self.texts[self.i] == "[":
                    self.fail("extension fields ('[name]') are not supported")
                self.fail("expected a field name of %s, found %s" % (mtype.name, self.describe()))
            name_idx = self.i
            name = self.texts[name_idx]
            fdef = mtype.fields.get(name)
            if fdef is None:
                self.fail("unknown field '%s' in %s" % (name, mtype.name), cls=SchemaError)
            self.i += 1
            if not fdef.repeated:
                if name in seen:
                    self.fail("non-repeated field '%s' of %s is given more than once" % (name, mtype.name),
                              idx=name_idx, cls=SchemaError)
                seen.add(name)
            if fdef.kind == "message":
                self.parse_message_field(msg, fdef, name_idx)
            else:
                self.parse_scalar_field(msg, fdef, name_idx)
            if not self.accept(","):
                self.accept(";")

    def parse_message_field(self, msg, fdef, name_idx):
        colon = self.accept(":")
        if colon and self.is_sym("["):
            self.parse_list(fdef, lambda: self.parse_sub_message(msg, fdef, name_idx))
        else:
            self.parse_sub_message(msg, fdef, name_idx)
        if not msg.where(fdef.name):
            msg.set_where(fdef.name, self.loc(name_idx))

    def parse_list(self, fdef, parse_element):
        """``[a, b, ...]`` (the opening ``[`` is next): ``parse_element()`` for each element of a repeated field."""
        if not fdef.repeated:
            self.fail("list syntax '[...]' is only allowed for repeated fields; '%s' is not repeated" % fdef.name,
                      cls=SchemaError)
        self.i += 1
        first = True
        while not self.accept("]"):
            if not first:
                self.expect(",", "between list elements")
            first = False
            parse_element()

    def parse_sub_message(self, msg, fdef, name_idx):
        open_idx = self.i
        opener = self.texts[open_idx] if self.kinds[open_idx] == "sym" else None
        if opener not in _CLOSE:
            self.fail("expected '{' or '<' to open message field '%s', found %s" % (fdef.name, self.describe()))
        self.i += 1
        sub = Message(fdef.type_name)
        sub.set_where(None, self.loc(name_idx))
        self.parse_body(sub, _CLOSE[opener], open_idx)
        self.check_required(sub, name_idx)
        if fdef.repeated:
            getattr(msg, fdef.name).append(sub)
        else:
            setattr(msg, fdef.name, sub)

    def check_required(self, msg, name_idx):
        for f in msg.message_type.fields.values():
            if f.label == "required" and not msg.has(f.name):
                where = msg.where(None) if name_idx is None else self.loc(name_idx)
                block = "" if name_idx is None else " '%s'" % self.texts[name_idx]
                raise SchemaError("%s: missing required field '%s' in %s%s"
                                  % (where, f.name, msg.type_name, block))

    def parse_scalar_field(self, msg, fdef, name_idx):
        if not self.accept(":"):
            self.fail("expected ':' after field name '%s', found %s" % (fdef.name, self.describe()))
        if self.is_sym("["):
            values = getattr(msg, fdef.name)
            self.parse_list(fdef, lambda: values.append(self.parse_value(fdef)))
        else:
            value = self.parse_value(fdef)
            if fdef.repeated:
                getattr(msg, fdef.name).append(value)
            else:
                msg._values[fdef.name] = value
        if not msg.where(fdef.name):
            msg.set_where(fdef.name, self.loc(name_idx))

    # -- values ---------------------------------------------------------------------------------------------
    def parse_value(self, fdef):
        kind = fdef.kind
        if kind in ("string", "bytes"):
            return self.parse_string(fdef)
        if kind == "bool":
            return self.parse_bool(fdef)
        if kind == "enum":
            return self.parse_enum(fdef)
        if kind in ("float", "double"):
            return self.parse_float(fdef)
        return self.parse_int(fdef)

    def parse_int(self, fdef):
        start = self.i
        neg = self.accept("-")
        idx = self.i
        if self.kinds[idx] != "int":
            self.fail("expected an integer for %s field '%s', found %s" % (fdef.kind, fdef.name, self.describe()),
                      cls=SchemaError if self.kinds[idx] == "float" else ParseError)
        value = _int_value(self.texts[idx])
        self.i += 1
        if neg:
            value = -value
        lo, hi = INT_RANGES[fdef.kind]
        if not lo <= value <= hi:
            self.fail("integer %s%s is out of range for %s field '%s'"
                      % ("-" if neg else "", self.texts[idx], fdef.kind, fdef.name), idx=start, cls=SchemaError)
        return value

    def parse_float(self, fdef):
        neg = self.accept("-")
        idx = self.i
        kind, text = self.kinds[idx], self.texts[idx]
        if kind == "float":
            value = float(text.rstrip("fF"))
        elif kind == "int":
            if len(text) > 1 and text[0] == "0":
                self.fail("hexadecimal or octal literal %s is not allowed for %s field '%s'"
                          % (text, fdef.kind, fdef.name), cls=SchemaError)
            value = float(text)
        elif kind == "ident" and text.lower() in ("inf", "infinity"):
            value = math.inf
        elif kind == "ident" and text.lower() == "nan":
            value = math.nan
        else:
            self.fail("expected a number for %s field '%s', found %s" % (fdef.kind, fdef.name, self.describe()))
        self.i += 1
        if neg:
            value = -value
        return to_float32(value) if fdef.kind == "float" else value

    def parse_bool(self, fdef):
        kind, text = self.kinds[self.i], self.texts[self.i]
        if kind == "ident" and text in _TRUE:
            value = True
        elif kind == "ident" and text in _FALSE:
            value = False
        elif kind == "int" and text in ("0", "1"):
            value = text == "1"
        else:
            self.fail("expected true or false for bool field '%s', found %s" % (fdef.name, self.describe()),
                      cls=SchemaError if kind in ("ident", "int", "float") else ParseError)
        self.i += 1
        return value

    def parse_enum(self, fdef):
        enum = ENUMS[fdef.type_name]
        start = self.i
        neg = self.accept("-")
        kind, text = self.kinds[self.i], self.texts[self.i]
        if kind == "ident" and not neg:
            if text not in enum.values:
                self.fail("unknown value '%s' of enum %s for field '%s' (one of %s)"
                          % (text, enum.name, fdef.name, ", ".join(enum.values)), cls=SchemaError)
            self.i += 1
            return text
        if kind == "int":
            number = _int_value(text) * (-1 if neg else 1)
            if number not in enum.names:
                self.fail("%d is not a value of enum %s for field '%s'" % (number, enum.name, fdef.name),
                          idx=start, cls=SchemaError)
            self.i += 1
            return enum.names[number]
        self.fail("expected a value of enum %s for field '%s', found %s" % (enum.name, fdef.name, self.describe()))

    def parse_string(self, fdef):
        if self.kinds[self.i] != "string":
            self.fail("expected a quoted string for %s field '%s', found %s"
                      % (fdef.kind, fdef.name, self.describe()))
        parts = []
        while self.kinds[self.i] == "string":
            parts.append(self.unescape(self.texts[self.i][1:-1]))
            self.i += 1
        data = b"".join(parts)
        if fdef.kind == "bytes":
            return data
        return data.decode("utf-8", "surrogateescape")

    def unescape(self, body):
        if "\\" not in body:
            return body.encode("utf-8")
        out = []
        pos = 0
        pending_high = pending_end = None
        for m in _ESCAPE_RE.finditer(body):
            out.append(body[pos:m.start()].encode("utf-8"))
            pos = m.end()
            octal, hex2, u4, u8, other = m.groups()
            code = None
            if octal is not None:
                value = int(octal, 8)
                if value > 255:
                    self.fail("octal escape \\%s is out of range" % octal)
                out.append(bytes([value]))
            elif hex2 is not None:
                out.append(bytes([int(hex2, 16)]))
            elif u4 is not None or u8 is not None:
                code = int(u4 or u8, 16)
            elif other in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[other])
            else:
                self.fail("invalid escape sequence '\\%s' in string literal" % other)
            if pending_high is not None:
                if code is None or not 0xDC00 <= code <= 0xDFFF or m.start() != pending_end:
                    self.fail("unpaired surrogate in \\u escape")
                code = 0x10000 + ((pending_high - 0xD800) << 10) + (code - 0xDC00)
                pending_high = None
            elif code is not None and 0xD800 <= code <= 0xDBFF:
                pending_high, pending_end = code, m.end()
                continue
            if code is not None:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    self.fail("invalid unicode escape (code point 0x%X)" % code)
                out.append(chr(code).encode("utf-8"))
        if pending_high is not None:
            self.fail("unpaired surrogate in \\u escape")
        out.append(body[pos:].encode("utf-8"))
        return b"".join(out)


def _int_value(text):
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)
    if len(text) > 1 and text[0] == "0":
        return int(text, 8)
    return int(text)


def parse(text, type_name="NetParameter", filename=None):
    """Parse protobuf text format into a :class:`Message`.

    Parameters
    ----------
    text : str or bytes
        The prototxt (bytes must be UTF-8).
    type_name : str
        Schema message type of the top level (``"NetParameter"``, ``"SolverParameter"``, ...).
    filename : str, optional
        Used in positions ``file:line:col``; ``"<string>"`` when not given.

    Returns
    -------
    Message

    Raises
    ------
    ParseError, SchemaError
        With a message starting ``file:line:col: `` that names the offending token.
    """
    filename = "<string>" if filename is None else str(filename)
    if type_name not in SCHEMA:
        raise SchemaError("%s: unknown message type '%s'" % (filename, type_name))
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            head = data[:e.start]
            line = head.count(b"\n") + 1
            col = len(head[head.rfind(b"\n") + 1:].decode("utf-8")) + 1
            raise ParseError("%s:%d:%d: invalid UTF-8 byte 0x%02X" % (filename, line, col, data[e.start])) from None
    elif not isinstance(text, str):
        raise ParseError("%s: expected prototxt text, got %s" % (filename, type(text).__name__))
    bad = _SURROGATE_RE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise ParseError("%s:%d:%d: invalid character %r (a lone surrogate)" % (filename, line, col, bad.group()))
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    parser = _Parser(text, filename)
    msg = Message(type_name)
    parser.parse_top(msg)
    return msg


def read_prototxt(path, type_name="NetParameter"):
    """Read and parse a prototxt file (see :func:`parse`); an unreadable file is a ParseError."""
    return parse(read_bytes(path), type_name, filename=str(path))


# -- writer -----------------------------------------------------------------------------------------------------
def _format_float(value, kind):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "float":
        return str(np.float32(value))
    return repr(float(value))


def _quote(value):
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    out = ['"']
    for b in data:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append("\\%03o" % b)
    out.append('"')
    return "".join(out)


def _format_scalar(fdef, value):
    kind = fdef.kind
    if kind in ("string", "bytes"):
        return _quote(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "enum":
        return str(value)
    if kind in ("float", "double"):
        return _format_float(float(value), kind)
    return str(int(value))


def _write(msg, indent, lines):
    pad = "  " * indent
    for fdef, value in msg.list_fields():
        values = value if fdef.repeated else [value]
        for v in values:
            if fdef.kind == "message":
                lines.append("%s%s {" % (pad, fdef.name))
                _write(v, indent + 1, lines)
                lines.append("%s}" % pad)
            else:
                lines.append("%s%s: %s" % (pad, fdef.name, _format_scalar(fdef, v)))


def to_text(msg):
    """Canonical prototxt text of a :class:`Message` (fields in number order, 2-space indent).

    The result parses back with :func:`parse` into an equal message (float fields are float32 values and
    are printed with the shortest float32 representation).
    """
    lines = []
    _write(msg, 0, lines)
    return "".join(line + "\n" for line in lines)
