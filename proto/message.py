"""Messages: parsed protobuf data, checked against a schema, with proto2 defaults and presence.

A :class:`Message` is what the text-format reader (``text_format.py``) and the wire-format reader
(``wire.py``) produce. It behaves like the generated C++ class Caffe uses:

* ``msg.name`` reads a field. An unset singular field gives the schema default (``0``, ``""``, the declared
  default, or an *empty* sub-message); an unset repeated field gives ``[]``.
* ``msg.has("name")`` tells presence (Caffe checks ``has_kernel_h()``, ``has_ignore_label()`` ...).
* ``msg.name = value`` sets a field; ``msg.mutable("sub")`` returns a sub-message that is stored (so it can
  be filled in place); ``msg.add("repeated_message_field")`` appends and returns a new element.
* Enum values are stored as their *names* (``"MAX"``, ``"TEST"``), whatever form the input used.
* A repeated float/double field set from a numpy array keeps it as a 1-D array of the field's precision
  (``BlobProto.data`` decoded from the wire format is a float32 array); ``==`` compares arrays by value.
* ``msg.where("name")`` gives ``"file:line:col"`` of the field in the text it came from (``""`` if unknown),
  so later stages (graph building, layer set-up) can point at the prototxt line.

The schema is a dict ``SCHEMA[type_name] -> MessageType`` defined in ``schema.py`` with :func:`field`.
"""
import copy

from crfrnn_np.errors import ParseError

import numpy as np

def read_bytes(path):
    """The bytes of a file; an unreadable file is a ParseError naming it (shared by both readers)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise ParseError("%s: cannot read file: %s" % (path, e.strerror or e)) from None


#: Scalar kinds understood by the readers and writers.
SCALAR_KINDS = ("int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "float", "double",
                "string", "bytes")

#: Inclusive value range of every integer kind (checked by the text reader and the wire writer).
INT_RANGES = {
    "int32": (-2 ** 31, 2 ** 31 - 1), "sint32": (-2 ** 31, 2 ** 31 - 1),
    "int64": (-2 ** 63, 2 ** 63 - 1), "sint64": (-2 ** 63, 2 ** 63 - 1),
    "uint32": (0, 2 ** 32 - 1), "uint64": (0, 2 ** 64 - 1),
}


class FieldDef:
    """One field of a message type.

    Parameters
    ----------
    name : str
    number : int
        Protobuf field number (used by the wire format).
    kind : str
        One of :data:`SCALAR_KINDS`, ``"enum"`` or ``"message"``.
    label : {"optional", "repeated", "required"}
    default : object, optional
        proto2 default of an optional scalar/enum field (enum default given as its name).
    type_name : str, optional
        Message type name (``kind == "message"``) or enum name (``kind == "enum"``).
    packed : bool
        Whether a repeated scalar is written packed.
    """

    __slots__ = ("name", "number", "kind", "label", "default", "type_name", "packed")

    def __init__(self, name, number, kind, label="optional", default=None, type_name=None, packed=False):
        self.name, self.number, self.kind, self.label = name, number, kind, label
        self.type_name, self.packed = type_name, packed
        if default is None and label != "repeated":
            default = _zero_default(kind, type_name)
        self.default = default

    @property
    def repeated(self):
        return self.label == "repeated"

    def __repr__(self):
        return "FieldDef(%s %s %s = %d)" % (self.label, self.kind, self.name, self.number)


def _zero_default(kind, type_name):
    if kind in ("float", "double"):
        return 0.0
    if kind == "bool":
        return False
    if kind in ("string",):
        return ""
    if kind == "bytes":
        return b""
    if kind == "enum":
        return None  # resolved to the enum's first value by MessageType
    if kind in ("message", "?"):
        return None  # "?": a type name not yet resolved to a message or an enum
    return 0


class EnumDef:
    """An enum: ordered ``name -> number`` mapping."""

    def __init__(self, name, values):
        self.name = name
        self.values = dict(values)
        self.names = {v: k for k, v in reversed(list(self.values.items()))}

    @property
    def first(self):
        return next(iter(self.values))


class MessageType:
    """A message type: its fields by name and by number."""

    def __init__(self, name, fields):
        self.name = name
        self.fields = {f.name: f for f in fields}
        self.by_number = {f.number: f for f in fields}
        if len(self.fields) != len(fields) or len(self.by_number) != len(fields):
            raise ValueError("duplicate field name or number in message %s" % name)

    def __repr__(self):
        return "MessageType(%s)" % self.name


#: Filled by schema.py: message types and enums by name.
SCHEMA = {}
ENUMS = {}


def field(name, number, kind, label="optional", default=None, type_name=None, packed=False):
    """Short-hand used by ``schema.py`` to declare a field."""
    if kind not in SCALAR_KINDS and kind not in ("enum", "message"):
        # a bare message or enum name: decide which once the schema is complete
        type_name, kind = kind, "?"
    return FieldDef(name, number, kind, label, default, type_name, packed)


def define_message(name, *fields):
    SCHEMA[name] = MessageType(name, list(fields))
    return SCHEMA[name]


def define_enum(name, values):
    ENUMS[name] = EnumDef(name, values)
    return ENUMS[name]


def resolve_schema():
    """Resolve field kinds given as type names (called once by schema.py after all definitions)."""
    for mtype in SCHEMA.values():
        for f in mtype.fields.values():
            if f.kind == "?":
                if f.type_name in SCHEMA:
                    f.kind = "message"
                elif f.type_name in ENUMS:
                    f.kind = "enum"
                else:
                    raise ValueError("unknown type %s of %s.%s" % (f.type_name, mtype.name, f.name))
            if f.kind == "enum" and f.label != "repeated":
                enum = ENUMS[f.type_name]
                if f.default is None:
                    f.default = enum.first
                elif isinstance(f.default, int):
                    f.default = enum.names[f.default]


def _values_equal(a, b):
    """Field-value equality that also compares numpy arrays (element-wise, NaN == NaN) with lists."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(x is y or _values_equal(x, y) for x, y in zip(a, b))
    return a == b


class Message:
    """An instance of a schema message type (see the module docstring)."""

    __slots__ = ("_type", "_values", "_locs")

    def __init__(self, type_name, **values):
        object.__setattr__(self, "_type", SCHEMA[type_name])
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_locs", {})
        for k, v in values.items():
            setattr(self, k, v)

    # -- introspection -----------------------------------------------------------------------------------
    @property
    def type_name(self):
        return self._type.name

    @property
    def message_type(self):
        return self._type

    def field_def(self, name):
        try:
            return self._type.fields[name]
        except KeyError:
            raise AttributeError("message %s has no field '%s'" % (self._type.name, name)) from None

    def has(self, name):
        """Presence of a field (for a repeated field: non-empty)."""
        f = self.field_def(name)
        v = self._values.get(name)
        if f.repeated:
            return v is not None and len(v) > 0
        return name in self._values

    def list_fields(self):
        """``[(FieldDef, value)]`` of the present fields, in field-number order."""
        out = []
        for f in sorted(self._type.fields.values(), key=lambda f: f.number):
            if self.has(f.name):
                out.append((f, self._values[f.name]))
        return out

    def where(self, name=None):
        """``file:line:col`` where a field (or, with no name, the message itself) was read; ``""`` if unknown."""
        return self._locs.get(name, "")

    def set_where(self, name, loc):
        self._locs[name] = loc

    # -- access ------------------------------------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        f = self.field_def(name)
        values = self._values
        if name in values:
            return values[name]
        if f.repeated:
            lst = []
            values[name] = lst
            return lst
        if f.kind == "message":
            return Message(f.type_name)  # a default instance, not stored: has() stays False
        return f.default

    def __setattr__(self, name, value):
        f = self.field_def(name)
        if f.repeated:
            if isinstance(value, np.ndarray) and f.kind in ("float", "double"):
                # float arrays (BlobProto.data ...) stay 1-D numpy arrays of the field's precision
                value = np.ascontiguousarray(value, np.float32 if f.kind == "float" else np.float64).ravel()
            else:
                value = list(value)
        elif f.kind == "enum" and isinstance(value, int) and not isinstance(value, bool):
            enum = ENUMS[f.type_name]
            if value not in enum.names:
                raise ValueError("%d is not a value of enum %s" % (value, enum.name))
            value = enum.names[value]
        self._values[name] = value

    def clear(self, name):
        self.field_def(name)
        self._values.pop(name, None)
        self._locs.pop(name, None)

    def mutable(self, name):
        """The stored sub-message ``name`` (created empty if absent), for filling in place."""
        f = self.field_def(name)
        if f.kind != "message" or f.repeated:
            raise AttributeError("%s.%s is not a singular message field" % (self._type.name, name))
        if name not in self._values:
            self._values[name] = Message(f.type_name)
        return self._values[name]

    def add(self, name, **values):
        """Append a new element to the repeated message field ``name`` and return it."""
        f = self.field_def(name)
        if f.kind != "message" or not f.repeated:
            raise AttributeError("%s.%s is not a repeated message field" % (self._type.name, name))
        m = Message(f.type_name, **values)
        getattr(self, name).append(m)
        return m

    def copy(self):
        return copy.deepcopy(self)

    def __deepcopy__(self, memo):
        m = Message(self._type.name)
        object.__setattr__(m, "_values", copy.deepcopy(self._values, memo))
        object.__setattr__(m, "_locs", dict(self._locs))
        return m

    def __eq__(self, other):
        if not isinstance(other, Message) or other._type is not self._type:
            return NotImplemented
        mine, theirs = self.list_fields(), other.list_fields()
        if [f.name for f, _ in mine] != [f.name for f, _ in theirs]:
            return False
        return all(_values_equal(a, b) for (_, a), (_, b) in zip(mine, theirs))

    def __repr__(self):
        return "<%s %s>" % (self._type.name, ", ".join("%s=%r" % (f.name, v) for f, v in self.list_fields()))
