"""``crfrnn unroll M``: print a net with every MultiStageMeanfield layer written out as its step layers.

Each ``MultiStageMeanfield`` layer becomes T iterations of Softmax, PermutohedralFilter (spatial and
bilateral), Compatibility (W_s, W_b), Eltwise SUM, Compatibility (μ) and UnaryAdd — the very layers the
fused layer is built from (``crfrnn_np.layers.multi_stage_meanfield.unrolled_layers``). The three parameter
matrices are shared across iterations with ``param { name: "<layer>_spatial_weight" }`` (``_bilateral_weight``,
``_compatibility``), so the printed net runs in ``crfrnn`` and computes the same forward and backward as the
fused one. An ``untied: true`` layer unrolls into 3T unshared Compatibility blobs (each iteration its own
W_s, W_b, mu), which load from and into the layer's 3T blobs. Legacy (V1, ``input_dim``) nets are upgraded
first.
"""
import sys


def add_parser(sub):
    p = sub.add_parser("unroll", help="print the net with MultiStageMeanfield layers unrolled into step layers")
    p.add_argument("model", help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--output", "-o", help="write the unrolled prototxt here instead of standard output")
    return p


def unroll_net(net_param):
    """A copy of ``net_param`` (NetParameter) with each MultiStageMeanfield layer replaced by its step layers.

    Parameters
    ----------
    net_param : Message (NetParameter), already upgraded to ``layer`` syntax

    Returns
    -------
    Message (NetParameter)
    """
    from crfrnn_np.layers.multi_stage_meanfield import unrolled_layers
    out = net_param.copy()
    layers = []
    for lp in net_param.layer:
        if lp.type == "MultiStageMeanfield":
            layers.extend(unrolled_layers(lp))
        else:
            layers.append(lp.copy())
    out.layer = layers
    return out


def run(args):
    from crfrnn_np import models, proto
    from crfrnn_np.atomic import write_bytes
    text = proto.to_text(unroll_net(models.read_net(args.model)))
    if args.output:
        write_bytes(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0
