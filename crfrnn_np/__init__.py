"""crfrnn-np: CRF-as-RNN (Zheng et al., ICCV 2015) as a Caffe-style engine in NumPy and Numba.

The public API has pycaffe's shape::

    import crfrnn_np as cn
    net = cn.Net("deploy.prototxt", weights="model.caffemodel", phase="TEST")
    out = net.forward(data=x)

See ``ARCHITECTURE.md`` in the project's shared folder and the README.
"""
from .errors import (Error, ParseError, SchemaError, NetError, ShapeError, WeightsError,  # noqa: F401
                     SolverError, BackendError)
from .blob import Blob  # noqa: F401
from .layer import Layer, register_layer, layer_types, create_layer  # noqa: F401
from . import proto  # noqa: F401

__version__ = "0.1.0"
from .net import Net  # noqa: F401
from .gradcheck import GradientChecker  # noqa: F401
from . import gradcheck  # noqa: F401


def get_solver(solver, **kwargs):
    """Build the solver named by ``type`` in a solver prototxt (path, text or SolverParameter).

    See :mod:`crfrnn_np.solver`.
    """
    from .solver import get_solver as _get_solver
    return _get_solver(solver, **kwargs)
