"""Input: the net's input blobs.

No computation. ``input_param.shape`` gives the top shapes: one ``BlobShape`` for every top, one per top, or
none (the tops are shaped later, e.g. by ``Net.forward(data=x)``). ``reshape`` leaves the tops alone so that
an input reshaped by the net keeps its new shape; there is no bottom and so no backward.
"""
from crfrnn_np.layer import Layer, register_layer


@register_layer("Input")
class InputLayer(Layer):
    """Tops shaped from ``input_param.shape``; the net writes their data."""

    exact_num_bottom = 0
    min_num_top = 1

    def layer_setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error("input_param must give 0, 1 or %d (one per top) shapes, got %d"
                             % (len(top), len(shapes)), field="input_param")
        for i, t in enumerate(top):
            if shapes:
                dims = shapes[0].dim if len(shapes) == 1 else shapes[i].dim
                try:
                    t.reshape([int(d) for d in dims])
                except Exception as exc:
                    raise self.shape_error("top '%s': %s" % (t.name, exc), field="input_param") from None

    def reshape(self, bottom, top):
        """Nothing to do: the tops keep the shape the net (or ``layer_setup``) gave them."""

    def forward_cpu(self, bottom, top):
        """Nothing to do: the net has written the input data into the tops."""

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing to do: there are no bottoms."""
