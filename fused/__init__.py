"""Fast paths, fenced off from the layers they speed up.

A module here computes what a group of step layers computes, rearranged for speed; it opens with a table of
its kernels and the step layers each replaces, and every kernel is tested against those steps. The layers in
``crfrnn_np.layers`` stay the definition: an engine field in the prototxt picks the fused form or the steps
(``multi_stage_meanfield_param { engine: FUSED | STEPS | DEFAULT }``).

* :mod:`.meanfield`: MultiStageMeanfield's FUSED engine (CPU).
* :mod:`.meanfield_cuda`: MultiStageMeanfield's FUSED engine on the ``cuda`` backend (numba.cuda kernels).
"""
