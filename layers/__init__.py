"""Layer implementations, one type per file; importing this package registers them all.

Each module opens with the maths of its forward and backward in terms of the blob shapes; ``forward_cpu`` and
``backward_cpu`` sit side by side. See ``crfrnn_np/layer.py`` for the contract.
"""
from . import input, conv, deconv, pool, inner_product  # noqa: F401
from . import relu, sigmoid, tanh, dropout, crop, eltwise, concat, flatten, reshape, split  # noqa: F401
from . import softmax, softmax_loss, accuracy, hdf5_data, image_seg_data  # noqa: F401
from . import permutohedral_filter, compatibility, unary_add, multi_stage_meanfield  # noqa: F401
