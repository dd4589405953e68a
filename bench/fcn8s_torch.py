"""FCN-8s of the CRF-RNN deploy net (spec crfasrnn.md §4.2, layers 1-48) in ``torch.nn``, for the benchmark.

Written from the spec's table, independently of the prototxt our engine reads: the crop offsets 5, 9 and 31
are the spec's numbers (our Crop layer derives them from the graph). Shapes for a 1x3x500x500 input::

    conv1 (pad 100) 698 -> pool1 349 -> pool2 175 -> pool3 88 -> pool4 44 -> pool5 22 -> fc6 (k7) 16
    score 16 -> score2 (deconv k4 s2, bias) 34 ; score-pool4 44 cropped at 5 ; sum
          -> score4 (deconv k4 s2) 70 ; score-pool3 88 cropped at 9 ; sum
          -> bigscore (deconv k16 s8) 568 cropped at 31 to the input size -> coarse (1, 21, 500, 500)

Pooling is MAX 2x2 stride 2 with Caffe's ceil rounding (``ceil_mode=True``; no padding, so PyTorch's rule that
the last window starts inside the input is Caffe's). Dropout is the identity at test time and is left out.
Caffe's Deconvolution weight (C_in, C_out, k, k) is ``ConvTranspose2d``'s layout.

This module imports torch; it is used by ``bench/bench_fcn.py`` only, never by the package or the tests.
"""
import torch
from torch import nn

#: (name, in channels, out channels, kernel, pad) of the VGG-16 trunk, in order; "pool" marks a 2x2 pool.
TRUNK = (
    ("conv1_1", 3, 64, 3, 100), ("conv1_2", 64, 64, 3, 1), "pool",
    ("conv2_1", 64, 128, 3, 1), ("conv2_2", 128, 128, 3, 1), "pool",
    ("conv3_1", 128, 256, 3, 1), ("conv3_2", 256, 256, 3, 1), ("conv3_3", 256, 256, 3, 1), "pool",
    ("conv4_1", 256, 512, 3, 1), ("conv4_2", 512, 512, 3, 1), ("conv4_3", 512, 512, 3, 1), "pool",
    ("conv5_1", 512, 512, 3, 1), ("conv5_2", 512, 512, 3, 1), ("conv5_3", 512, 512, 3, 1), "pool",
    ("fc6", 512, 4096, 7, 0), ("fc7", 4096, 4096, 1, 0),
)
NUM_CLASSES = 21


class FCN8s(nn.Module):
    """The FCN-8s part of the CRF-RNN deploy net; ``forward(data)`` returns ``coarse`` (N, 21, H, W)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.ModuleDict()
        for item in TRUNK:
            if item != "pool":
                name, cin, cout, k, pad = item
                self.trunk[name] = nn.Conv2d(cin, cout, k, padding=pad)
        self.score_fr = nn.Conv2d(4096, NUM_CLASSES, 1)
        self.score2 = nn.ConvTranspose2d(NUM_CLASSES, NUM_CLASSES, 4, stride=2, bias=True)
        self.score_pool4 = nn.Conv2d(512, NUM_CLASSES, 1)
        self.score4 = nn.ConvTranspose2d(NUM_CLASSES, NUM_CLASSES, 4, stride=2, bias=False)
        self.score_pool3 = nn.Conv2d(256, NUM_CLASSES, 1)
        self.upsample = nn.ConvTranspose2d(NUM_CLASSES, NUM_CLASSES, 16, stride=8, bias=False)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    #: our layer name -> attribute of this module
    CAFFE_NAMES = {"score-fr": "score_fr", "score2": "score2", "score-pool4": "score_pool4",
                   "score4": "score4", "score-pool3": "score_pool3", "upsample": "upsample"}

    def module_for(self, caffe_name):
        """The torch module holding the weights of the Caffe layer ``caffe_name``."""
        if caffe_name in self.trunk:
            return self.trunk[caffe_name]
        return getattr(self, self.CAFFE_NAMES[caffe_name])

    def load_caffe_params(self, params):
        """Copy Caffe-layout blobs in: ``params`` maps layer name -> [weight, bias?] numpy arrays."""
        with torch.no_grad():
            for name, blobs in params.items():
                mod = self.module_for(name)
                if tuple(mod.weight.shape) != tuple(blobs[0].shape):
                    raise ValueError("%s: weight %s, torch wants %s" % (name, blobs[0].shape,
                                                                        tuple(mod.weight.shape)))
                mod.weight.copy_(torch.from_numpy(blobs[0]))
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(blobs[1]))
                elif len(blobs) > 1:
                    raise ValueError("%s has a bias blob but no bias in torch" % name)

    def forward(self, data):
        x = data
        pools = 0
        for item in TRUNK:
            if item == "pool":
                x = self.pool(x)
                pools += 1
                if pools == 3:
                    pool3 = x
                elif pools == 4:
                    pool4 = x
            else:
                x = torch.relu_(self.trunk[item[0]](x))
        score2 = self.score2(self.score_fr(x))
        del x
        h, w = score2.shape[2:]
        fused = score2 + self.score_pool4(pool4)[:, :, 5:5 + h, 5:5 + w]
        score4 = self.score4(fused)
        h, w = score4.shape[2:]
        final = score4 + self.score_pool3(pool3)[:, :, 9:9 + h, 9:9 + w]
        bigscore = self.upsample(final)
        h, w = data.shape[2:]
        return bigscore[:, :, 31:31 + h, 31:31 + w]
