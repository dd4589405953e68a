"""Automatic Split insertion (Caffe's ``InsertSplits``), with Caffe's names.

For every top (layer ``L``, top index ``j``, blob ``B``) consumed by more than one bottom — a non-zero loss weight
on that top counts as one more consumer — a layer ``{name: "B_L_j_split", type: "Split", bottom: B, top:
"B_L_j_split_0" ... "B_L_j_split_{k-1}"}`` is inserted right after ``L`` and the consumers are rewired in
order of appearance. ``L`` is the *last* layer that wrote ``B``, so an in-place ReLU ``relu1`` on blob
``innerprod1`` yields ``innerprod1_relu1_0_split``. A loss weight ``w`` on the split top moves to the Split
layer as ``loss_weight: w, 0, 0, ...`` and is removed from ``L``.
"""
from .proto import Message


def split_layer_name(blob_name, layer_name, top_index):
    return "%s_%s_%d_split" % (blob_name, layer_name, top_index)


def split_blob_name(blob_name, layer_name, top_index, split_index):
    return "%s_%d" % (split_layer_name(blob_name, layer_name, top_index), split_index)


def insert_splits(layers):
    """Return a new list of LayerParameter Messages with Split layers inserted where blobs fan out.

    Parameters
    ----------
    layers : list of Message
        LayerParameters in net order (already filtered by phase); they are not modified.
    """
    layers = [lp.copy() for lp in layers]
    last_writer = {}            # blob name -> (layer index, top index)
    bottom_source = {}          # (layer index, bottom index) -> (layer index, top index)
    consumers = {}              # (layer index, top index) -> number of bottoms reading it
    loss_weight = {}            # (layer index, top index) -> weight
    for i, lp in enumerate(layers):
        for b_idx, name in enumerate(lp.bottom):
            if name not in last_writer:
                continue  # unknown bottoms are reported by the net with their file position
            src = last_writer[name]
            bottom_source[(i, b_idx)] = src
            consumers[src] = consumers.get(src, 0) + 1
        for t_idx, name in enumerate(lp.top):
            last_writer[name] = (i, t_idx)
            w = lp.loss_weight[t_idx] if t_idx < len(lp.loss_weight) else 0.0
            if w:
                loss_weight[(i, t_idx)] = w

    def fan_out(src):
        return consumers.get(src, 0) + (1 if src in loss_weight else 0)

    out = []
    split_used = {}
    for i, lp in enumerate(layers):
        for b_idx, name in enumerate(lp.bottom):
            src = bottom_source.get((i, b_idx))
            if src is not None and fan_out(src) > 1:
                k = split_used.get(src, 0)
                split_used[src] = k + 1
                writer = layers[src[0]]
                lp.bottom[b_idx] = split_blob_name(name, writer.name, src[1], k)
        out.append(lp)
        for t_idx, name in enumerate(lp.top):
            src = (i, t_idx)
            n = fan_out(src)
            if n <= 1:
                continue
            split = Message("LayerParameter", name=split_layer_name(name, lp.name, t_idx), type="Split")
            split.bottom = [name]
            split.top = [split_blob_name(name, lp.name, t_idx, k) for k in range(n)]
            split.set_where(None, lp.where())
            if src in loss_weight:
                split.loss_weight = [loss_weight[src]] + [0.0] * (n - 1)
                weights = list(lp.loss_weight)
                weights[t_idx] = 0.0
                lp.loss_weight = weights
            out.append(split)
    return out
