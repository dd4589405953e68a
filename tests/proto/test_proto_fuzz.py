"""Fuzzing: mutated prototxts and wire bytes either parse (and then round-trip) or raise crfrnn_np.Error.

Anything else (IndexError, struct.error, RecursionError, UnicodeError, ...) fails the test with the input
that caused it. Fixed seeds keep the runs reproducible.
"""
import random
import re

import pytest

import crfrnn_np
from crfrnn_np import proto

ANCHOR_FILES = [
    (("caffe_lenet", "lenet.prototxt"), "NetParameter"),
    (("caffe_lenet", "lenet_train_test.prototxt"), "NetParameter"),
    (("caffe_lenet", "lenet_solver.prototxt"), "SolverParameter"),
    (("caffe_cifar10_quick", "cifar10_quick.prototxt"), "NetParameter"),
    (("caffe_cifar10_quick", "cifar10_quick_solver_lr1.prototxt"), "SolverParameter"),
    (("caffe_cifar10_quick", "v1_legacy", "prediction_example_v1.prototxt"), "NetParameter"),
    (("crfasrnn", "TVG_CRFRNN_COCO_VOC.prototxt"), "NetParameter"),
    (("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt"), "NetParameter"),
    (("crfasrnn", "crfrnn_branch", "TVG_CRFRNN_new_traintest.prototxt"), "NetParameter"),
]

INLINE = [
    ("name: 'x' input: 'data' input_dim: [1, 3, 4, 4] layer { name: 'r' type: 'ReLU' bottom: 'data' "
     "top: 'data' relu_param < negative_slope: -.5e-1f > } state: { phase: TRAIN stage: 'a' 'b' }", "NetParameter"),
    ("layers { type: POOLING pooling_param { pool: 2 pad: 0x1 kernel_size: 010 } blobs_lr: [1, 2] "
     "blobs { data: [1, inf, -nan] shape { dim: -3 } } }", "NetParameter"),
    ("layer { multi_stage_meanfield_param { num_iterations: 5 theta_alpha: 160 theta_beta: 3 theta_gamma: 3 "
     "spatial_filter_weights_str: '3 3\\t3' '\\x41\\101\\u00e9' } param: [{lr_mult: 1e4}, {name: \"s\"}] }",
     "NetParameter"),
    ("base_lr: 1e-13 lr_policy: 'multistep' stepvalue: [10, 20] solver_mode: CPU random_seed: -1 "
     "net_param { layer { type: 'Input' input_param { shape { dim: 1 } } } } test_state { stage: 'x' }",
     "SolverParameter"),
    ("data: [1.5, 2, -3e38] num: -2147483648 channels: 2147483647 double_diff: 1e-308", "BlobProto"),
]

TOKEN_POOL = ["{", "}", "<", ">", ":", "[", "]", ",", ";", "-", "#", "\n", "'", '"', "\\", "0x", "08", "1e",
              "1e400", "-1", "4294967296", "2147483648", "9223372036854775808", ".", "5.", ".5", "inf", "nan",
              "true", "t", "MAX", "TEST", "layer", "layers", "name", "type", "param", "dim", "blobs",
              "convolution_param", "multi_stage_meanfield_param", "'\\x'", "'\\777'", "'\\ud800'", "\"a\"",
              "\t", "[ext]", "\x00", "é", "\ufeff", "\udcff", "0.65f", "10f", "- 3"]
_TOKENS = re.compile(r"\s+|#[^\n]*|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[A-Za-z_][A-Za-z0-9_]*"
                     r"|[0-9.][0-9A-Za-z.+-]*|.", re.S)


def mutate_text(text, rnd):
    """A few random character- or token-level edits of ``text``."""
    for _ in range(rnd.randint(1, 3)):
        op = rnd.random()
        if op < 0.45:
            pos = rnd.randrange(len(text) + 1)
            choice = rnd.random()
            if choice < 0.3 and text:
                text = text[:pos] + text[pos + 1:]
            elif choice < 0.6:
                text = text[:pos] + rnd.choice(TOKEN_POOL) + text[pos:]
            elif text:
                text = text[:pos] + chr(rnd.randrange(1, 128)) + text[pos + 1:]
        else:
            tokens = _TOKENS.findall(text) or [""]
            i = rnd.randrange(len(tokens))
            choice = rnd.random()
            if choice < 0.3:
                del tokens[i]
            elif choice < 0.55:
                tokens.insert(i, rnd.choice(tokens))
            elif choice < 0.8:
                tokens[i] = rnd.choice(TOKEN_POOL)
            else:
                j = rnd.randrange(len(tokens))
                tokens[i], tokens[j] = tokens[j], tokens[i]
            text = "".join(tokens)
    return text


def check_text(text, type_name):
    """Parse; on success the message must survive to_text, the wire format and (nets) the upgrade pass."""
    try:
        msg = proto.parse(text, type_name)
    except crfrnn_np.Error:
        return False
    assert proto.parse(proto.to_text(msg), type_name) == msg
    assert proto.decode(proto.encode(msg), type_name) == msg
    if type_name == "NetParameter":
        try:
            proto.upgrade_net(msg)
        except crfrnn_np.Error:
            pass
    return True


def run_cases(cases):
    parsed = 0
    for text, type_name in cases:
        try:
            parsed += check_text(text, type_name)
        except AssertionError:
            raise
        except Exception as e:  # anything that is not a crfrnn_np.Error is a bug
            pytest.fail("%s: %r on input %r" % (type(e).__name__, e, text[:2000]))
    return parsed


def test_fuzz_anchor_prototxts(anchor):
    rnd = random.Random(20240611)
    sources = [(anchor(*parts).read_text(), type_name) for parts, type_name in ANCHOR_FILES]
    cases = []
    for k in range(600):
        text, type_name = sources[k % len(sources)]
        cases.append((mutate_text(text, rnd), type_name))
    parsed = run_cases(cases)
    assert 0 < parsed < len(cases)  # both outcomes are exercised


def test_fuzz_inline_prototxts():
    rnd = random.Random(1701)
    cases = []
    for k in range(2500):
        text, type_name = INLINE[k % len(INLINE)]
        cases.append((mutate_text(text, rnd), type_name))
    parsed = run_cases(cases)
    assert 0 < parsed < len(cases)


def test_fuzz_bytes_input():
    rnd = random.Random(7)
    base = INLINE[0][0].encode("utf-8")
    for _ in range(500):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        try:
            proto.parse(bytes(data))
        except crfrnn_np.Error:
            pass


def small_net_bytes():
    net = proto.parse(INLINE[0][0] + " " + INLINE[2][0])
    blob = net.layer[0].add("blobs")
    blob.data = [0.5, -1.0, 2.0]
    blob.mutable("shape").dim = [1, 3]
    blob.num = -1
    return proto.encode(net)


def test_fuzz_wire_decoder():
    rnd = random.Random(99)
    base = small_net_bytes()
    assert proto.decode(base).layer[0].blobs[0].data.tolist() == [0.5, -1.0, 2.0]
    decoded = 0
    for k in range(3000):
        data = bytearray(base)
        op = k % 4
        if op == 0:
            data = data[:rnd.randrange(len(data))]
        elif op == 1:
            for _ in range(rnd.randint(1, 3)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif op == 2:
            pos = rnd.randrange(len(data) + 1)
            data[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        else:
            pos = rnd.randrange(len(data))
            del data[pos:pos + rnd.randint(1, 4)]
        try:
            msg = proto.decode(bytes(data))
        except crfrnn_np.Error:
            continue
        except Exception as e:
            pytest.fail("%s: %r on bytes %s" % (type(e).__name__, e, bytes(data).hex()))
        decoded += 1
        assert proto.decode(proto.encode(msg)) == msg
    assert 0 < decoded < 3000
