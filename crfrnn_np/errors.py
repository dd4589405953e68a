"""Errors raised by crfrnn-np.

Every problem a user can cause (a bad prototxt, a graph that does not connect, weights whose shapes do not
match, an input blob of the wrong shape) raises a subclass of :class:`Error`. The message always says
*where*: ``file:line:column`` for text the reader rejects, layer and blob names with shapes for graph and
weight problems. The command line prints ``str(err)`` on one line and exits non-zero.
"""


class Error(Exception):
    """Base class of every user-facing crfrnn-np error."""


class ParseError(Error):
    """A prototxt or binary protobuf file could not be read (message starts with ``file:line:col``)."""


class SchemaError(ParseError):
    """A field is unknown, repeated when singular, of the wrong type or missing when required."""


class NetError(Error):
    """The net graph is inconsistent: unknown bottom, duplicate top, unknown layer type, bad counts."""


class ShapeError(Error):
    """A blob has a shape a layer cannot accept, or would be absurdly large."""


class WeightsError(Error):
    """A weights file does not match the net (blob count or shape) or cannot be read."""


class SolverError(Error):
    """A solver definition or solver state is invalid."""


class BackendError(Error):
    """The requested backend is not available for this operation."""
