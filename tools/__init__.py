"""The ``crfrnn`` command line (mirrors the ``caffe`` tool); see :mod:`crfrnn_np.tools.main`."""
