"""The subset of ``caffe.proto`` crfrnn-np reads and writes, as a schema with proto2 defaults.

Field names, numbers, types and defaults are Caffe's (BVLC master, spec ``caffe.md`` section 1), plus the
CRF-as-RNN additions (spec ``crfasrnn.md`` section 1.3) and two project-specific layer parameters:

* ``LayerParameter.multi_stage_meanfield_param`` = 146 (the CAFFE-CPU build; the wire reader also accepts the
  crfrnn-branch number 1000, see :data:`WIRE_ALIASES`). BVLC's ``recurrent_param`` also uses 146; since the
  two cannot share a number here, ``recurrent_param`` is given 2146 (only text prototxts are portable).
* ``V1LayerParameter.multi_stage_meanfield_param`` = 44 and the V1 enum values ``SIMPLE_FAST_MEANFIELD`` = 41
  and ``MULTI_STAGE_MEANFIELD`` = 42 (CAFFE-2015), plus ``CROP`` = 40 of the FCN fork CAFFE-2015 is based on
  (``TVG_CRFRNN_COCO_VOC.prototxt`` uses it; upgraded to a ``"Crop"`` layer).
* ``LayerParameter.permutohedral_param`` = 1001 and ``compatibility_param`` = 1002 for the explicit CRF step
  layers written by ``crfrnn unroll``.
* DeepLab's additions to ``ImageDataParameter`` for its ``ImageSegData`` layer: ``ignore_label`` = 15
  (default 255) and ``label_type`` = 16 (enum ``LabelType``: NONE 0, IMAGE 1, PIXEL 2; default IMAGE), with
  DeepLab's numbers (its ``caffe.proto``), so DeepLab and PSPNet training prototxts load.
* ``MultiStageMeanfieldParameter.engine`` = 1001 (``DEFAULT``, ``STEPS``, ``FUSED``): which implementation runs
  the layer. No CRF-RNN build uses a number above 29 in that message, so the published prototxts, which
  never set it, load unchanged.

Enums nested in a message in caffe.proto (``PoolingParameter.PoolMethod``) live here in one flat namespace;
where two messages declare an identical enum (``Engine``) they share one definition.
"""
from .message import SCHEMA, define_enum, define_message, field as F, resolve_schema
from .text_format import to_float32

# -- enums -------------------------------------------------------------------------------------------------
define_enum("Phase", [("TRAIN", 0), ("TEST", 1)])
define_enum("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)])
define_enum("VarianceNorm", [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)])
define_enum("Engine", [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)])
define_enum("PoolMethod", [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)])
define_enum("RoundMode", [("CEIL", 0), ("FLOOR", 1)])
define_enum("EltwiseOp", [("PROD", 0), ("SUM", 1), ("MAX", 2)])
define_enum("NormRegion", [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)])
define_enum("NormalizationMode", [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)])
define_enum("ReductionOp", [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)])
define_enum("HingeNorm", [("L1", 1), ("L2", 2)])
define_enum("DB", [("LEVELDB", 0), ("LMDB", 1)])
define_enum("SnapshotFormat", [("HDF5", 0), ("BINARYPROTO", 1)])
define_enum("SolverMode", [("CPU", 0), ("GPU", 1)])
define_enum("SolverType", [("SGD", 0), ("NESTEROV", 1), ("ADAGRAD", 2), ("RMSPROP", 3), ("ADADELTA", 4),
                           ("ADAM", 5)])
define_enum("MeanfieldMode", [("POTTS", 0)])
define_enum("MeanfieldEngine", [("DEFAULT", 0), ("STEPS", 1), ("FUSED", 2)])
define_enum("PermutohedralKernel", [("SPATIAL", 0), ("BILATERAL", 1)])
define_enum("LabelType", [("NONE", 0), ("IMAGE", 1), ("PIXEL", 2)])
define_enum("V1LayerType", [
    ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2), ("CONCAT", 3),
    ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("CROP", 40), ("DATA", 5), ("DECONVOLUTION", 39), ("DROPOUT", 6),
    ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7), ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8), ("HDF5_DATA", 9),
    ("HDF5_OUTPUT", 10), ("HINGE_LOSS", 28), ("IM2COL", 11), ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13),
    ("INNER_PRODUCT", 14), ("LRN", 15), ("MEMORY_DATA", 29), ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34),
    ("POOLING", 17), ("POWER", 26), ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
    ("SILENCE", 36), ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33), ("TANH", 23),
    ("WINDOW_DATA", 24), ("THRESHOLD", 31), ("SIMPLE_FAST_MEANFIELD", 41), ("MULTI_STAGE_MEANFIELD", 42)])
define_enum("V0PadMethod", [("ZERO", 0)])

#: V1 enum name -> V2 type string (``UpgradeV1LayerType``).
V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "CROP": "Crop",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold", "SIMPLE_FAST_MEANFIELD": "SimpleFastMeanfield",
    "MULTI_STAGE_MEANFIELD": "MultiStageMeanfield",
}

# -- blobs and net ------------------------------------------------------------------------------------------
define_message("BlobShape", F("dim", 1, "int64", "repeated", packed=True))
define_message(
    "BlobProto",
    F("num", 1, "int32"), F("channels", 2, "int32"), F("height", 3, "int32"), F("width", 4, "int32"),
    F("data", 5, "float", "repeated", packed=True), F("diff", 6, "float", "repeated", packed=True),
    F("shape", 7, "BlobShape"),
    F("double_data", 8, "double", "repeated", packed=True),
    F("double_diff", 9, "double", "repeated", packed=True))
define_message("BlobProtoVector", F("blobs", 1, "BlobProto", "repeated"))
define_message(
    "Datum",
    F("channels", 1, "int32"), F("height", 2, "int32"), F("width", 3, "int32"), F("data", 4, "bytes"),
    F("label", 5, "int32"), F("float_data", 6, "float", "repeated"), F("encoded", 7, "bool"))
define_message(
    "FillerParameter",
    F("type", 1, "string", default="constant"), F("value", 2, "float"), F("min", 3, "float"),
    F("max", 4, "float", default=1.0), F("mean", 5, "float"), F("std", 6, "float", default=1.0),
    F("sparse", 7, "int32", default=-1), F("variance_norm", 8, "VarianceNorm"))
define_message(
    "NetParameter",
    F("name", 1, "string"), F("layers", 2, "V1LayerParameter", "repeated"),
    F("input", 3, "string", "repeated"), F("input_dim", 4, "int32", "repeated"),
    F("force_backward", 5, "bool"), F("state", 6, "NetState"), F("debug_info", 7, "bool"),
    F("input_shape", 8, "BlobShape", "repeated"), F("layer", 100, "LayerParameter", "repeated"))
define_message(
    "NetState",
    F("phase", 1, "Phase", default="TEST"), F("level", 2, "int32"), F("stage", 3, "string", "repeated"))
define_message(
    "NetStateRule",
    F("phase", 1, "Phase"), F("min_level", 2, "int32"), F("max_level", 3, "int32"),
    F("stage", 4, "string", "repeated"), F("not_stage", 5, "string", "repeated"))
define_message(
    "ParamSpec",
    F("name", 1, "string"), F("share_mode", 2, "DimCheckMode"), F("lr_mult", 3, "float", default=1.0),
    F("decay_mult", 4, "float", default=1.0))

# -- solver -------------------------------------------------------------------------------------------------
define_message(
    "SolverParameter",
    F("train_net", 1, "string"), F("test_net", 2, "string", "repeated"), F("test_iter", 3, "int32", "repeated"),
    F("test_interval", 4, "int32"), F("base_lr", 5, "float"), F("display", 6, "int32"),
    F("max_iter", 7, "int32"), F("lr_policy", 8, "string"), F("gamma", 9, "float"), F("power", 10, "float"),
    F("momentum", 11, "float"), F("weight_decay", 12, "float"), F("stepsize", 13, "int32"),
    F("snapshot", 14, "int32"), F("snapshot_prefix", 15, "string"), F("snapshot_diff", 16, "bool"),
    F("solver_mode", 17, "SolverMode", default="GPU"), F("device_id", 18, "int32"),
    F("test_compute_loss", 19, "bool"), F("random_seed", 20, "int64", default=-1),
    F("train_net_param", 21, "NetParameter"), F("test_net_param", 22, "NetParameter", "repeated"),
    F("debug_info", 23, "bool"), F("net", 24, "string"), F("net_param", 25, "NetParameter"),
    F("train_state", 26, "NetState"), F("test_state", 27, "NetState", "repeated"),
    F("snapshot_after_train", 28, "bool", default=True), F("regularization_type", 29, "string", default="L2"),
    F("solver_type", 30, "SolverType"), F("delta", 31, "float", default=1e-8),
    F("test_initialization", 32, "bool", default=True), F("average_loss", 33, "int32", default=1),
    F("stepvalue", 34, "int32", "repeated"), F("clip_gradients", 35, "float", default=-1.0),
    F("iter_size", 36, "int32", default=1), F("snapshot_format", 37, "SnapshotFormat", default="BINARYPROTO"),
    F("rms_decay", 38, "float", default=0.99), F("momentum2", 39, "float", default=0.999),
    F("type", 40, "string", default="SGD"), F("layer_wise_reduce", 41, "bool", default=True),
    F("weights", 42, "string", "repeated"))
define_message(
    "SolverState",
    F("iter", 1, "int32"), F("learned_net", 2, "string"), F("history", 3, "BlobProto", "repeated"),
    F("current_step", 4, "int32"))

# -- LayerParameter and its sub-parameters ------------------------------------------------------------------
#: ``(field name, number, message type)`` of the layer-type sub-messages of the current LayerParameter.
LAYER_PARAMS = [
    ("transform_param", 100, "TransformationParameter"), ("loss_param", 101, "LossParameter"),
    ("accuracy_param", 102, "AccuracyParameter"), ("argmax_param", 103, "ArgMaxParameter"),
    ("concat_param", 104, "ConcatParameter"), ("contrastive_loss_param", 105, "ContrastiveLossParameter"),
    ("convolution_param", 106, "ConvolutionParameter"), ("data_param", 107, "DataParameter"),
    ("dropout_param", 108, "DropoutParameter"), ("dummy_data_param", 109, "DummyDataParameter"),
    ("eltwise_param", 110, "EltwiseParameter"), ("exp_param", 111, "ExpParameter"),
    ("hdf5_data_param", 112, "HDF5DataParameter"), ("hdf5_output_param", 113, "HDF5OutputParameter"),
    ("hinge_loss_param", 114, "HingeLossParameter"), ("image_data_param", 115, "ImageDataParameter"),
    ("infogain_loss_param", 116, "InfogainLossParameter"),
    ("inner_product_param", 117, "InnerProductParameter"), ("lrn_param", 118, "LRNParameter"),
    ("memory_data_param", 119, "MemoryDataParameter"), ("mvn_param", 120, "MVNParameter"),
    ("pooling_param", 121, "PoolingParameter"), ("power_param", 122, "PowerParameter"),
    ("relu_param", 123, "ReLUParameter"), ("sigmoid_param", 124, "SigmoidParameter"),
    ("softmax_param", 125, "SoftmaxParameter"), ("slice_param", 126, "SliceParameter"),
    ("tanh_param", 127, "TanHParameter"), ("threshold_param", 128, "ThresholdParameter"),
    ("window_data_param", 129, "WindowDataParameter"), ("python_param", 130, "PythonParameter"),
    ("prelu_param", 131, "PReLUParameter"), ("spp_param", 132, "SPPParameter"),
    ("reshape_param", 133, "ReshapeParameter"), ("log_param", 134, "LogParameter"),
    ("flatten_param", 135, "FlattenParameter"), ("reduction_param", 136, "ReductionParameter"),
    ("embed_param", 137, "EmbedParameter"), ("tile_param", 138, "TileParameter"),
    ("batch_norm_param", 139, "BatchNormParameter"), ("elu_param", 140, "ELUParameter"),
    ("bias_param", 141, "BiasParameter"), ("scale_param", 142, "ScaleParameter"),
    ("input_param", 143, "InputParameter"), ("crop_param", 144, "CropParameter"),
    ("parameter_param", 145, "ParameterParameter"),
    ("multi_stage_meanfield_param", 146, "MultiStageMeanfieldParameter"),
    ("swish_param", 147, "SwishParameter"), ("clip_param", 148, "ClipParameter"),
    ("permutohedral_param", 1001, "PermutohedralParameter"),
    ("compatibility_param", 1002, "CompatibilityParameter"),
    ("recurrent_param", 2146, "RecurrentParameter"),
]
define_message(
    "LayerParameter",
    F("name", 1, "string"), F("type", 2, "string"), F("bottom", 3, "string", "repeated"),
    F("top", 4, "string", "repeated"), F("loss_weight", 5, "float", "repeated"),
    F("param", 6, "ParamSpec", "repeated"), F("blobs", 7, "BlobProto", "repeated"),
    F("include", 8, "NetStateRule", "repeated"), F("exclude", 9, "NetStateRule", "repeated"),
    F("phase", 10, "Phase"), F("propagate_down", 11, "bool", "repeated"),
    *[F(name, number, type_name) for name, number, type_name in LAYER_PARAMS])

#: Wire-format field numbers read as another field: ``{(message type, number): field name}``.
WIRE_ALIASES = {("LayerParameter", 1000): "multi_stage_meanfield_param"}

define_message(
    "TransformationParameter",
    F("scale", 1, "float", default=1.0), F("mirror", 2, "bool"), F("crop_size", 3, "uint32"),
    F("mean_file", 4, "string"), F("mean_value", 5, "float", "repeated"), F("force_color", 6, "bool"),
    F("force_gray", 7, "bool"))
define_message(
    "LossParameter",
    F("ignore_label", 1, "int32"), F("normalize", 2, "bool"),
    F("normalization", 3, "NormalizationMode", default="VALID"))
define_message(
    "AccuracyParameter",
    F("top_k", 1, "uint32", default=1), F("axis", 2, "int32", default=1), F("ignore_label", 3, "int32"))
define_message(
    "ArgMaxParameter",
    F("out_max_val", 1, "bool"), F("top_k", 2, "uint32", default=1), F("axis", 3, "int32"))
define_message("ConcatParameter", F("concat_dim", 1, "uint32", default=1), F("axis", 2, "int32", default=1))
define_message(
    "ContrastiveLossParameter", F("margin", 1, "float", default=1.0), F("legacy_version", 2, "bool"))
define_message(
    "ConvolutionParameter",
    F("num_output", 1, "uint32"), F("bias_term", 2, "bool", default=True), F("pad", 3, "uint32", "repeated"),
    F("kernel_size", 4, "uint32", "repeated"), F("group", 5, "uint32", default=1),
    F("stride", 6, "uint32", "repeated"), F("weight_filler", 7, "FillerParameter"),
    F("bias_filler", 8, "FillerParameter"), F("pad_h", 9, "uint32"), F("pad_w", 10, "uint32"),
    F("kernel_h", 11, "uint32"), F("kernel_w", 12, "uint32"), F("stride_h", 13, "uint32"),
    F("stride_w", 14, "uint32"), F("engine", 15, "Engine"), F("axis", 16, "int32", default=1),
    F("force_nd_im2col", 17, "bool"), F("dilation", 18, "uint32", "repeated"))
define_message(
    "CropParameter", F("axis", 1, "int32", default=2), F("offset", 2, "uint32", "repeated"))
define_message(
    "DataParameter",
    F("source", 1, "string"), F("scale", 2, "float", default=1.0), F("mean_file", 3, "string"),
    F("batch_size", 4, "uint32"), F("crop_size", 5, "uint32"), F("mirror", 6, "bool"),
    F("rand_skip", 7, "uint32"), F("backend", 8, "DB"), F("force_encoded_color", 9, "bool"),
    F("prefetch", 10, "uint32", default=4))
define_message("DropoutParameter", F("dropout_ratio", 1, "float", default=0.5))
define_message(
    "DummyDataParameter",
    F("data_filler", 1, "FillerParameter", "repeated"), F("num", 2, "uint32", "repeated"),
    F("channels", 3, "uint32", "repeated"), F("height", 4, "uint32", "repeated"),
    F("width", 5, "uint32", "repeated"), F("shape", 6, "BlobShape", "repeated"))
define_message(
    "EltwiseParameter",
    F("operation", 1, "EltwiseOp", default="SUM"), F("coeff", 2, "float", "repeated"),
    F("stable_prod_grad", 3, "bool", default=True))
define_message("ELUParameter", F("alpha", 1, "float", default=1.0))
define_message(
    "EmbedParameter",
    F("num_output", 1, "uint32"), F("input_dim", 2, "uint32"), F("bias_term", 3, "bool", default=True),
    F("weight_filler", 4, "FillerParameter"), F("bias_filler", 5, "FillerParameter"))
define_message(
    "ExpParameter",
    F("base", 1, "float", default=-1.0), F("scale", 2, "float", default=1.0), F("shift", 3, "float"))
define_message(
    "FlattenParameter", F("axis", 1, "int32", default=1), F("end_axis", 2, "int32", default=-1))
define_message(
    "HDF5DataParameter",
    F("source", 1, "string"), F("batch_size", 2, "uint32"), F("shuffle", 3, "bool"))
define_message("HDF5OutputParameter", F("file_name", 1, "string"))
define_message("HingeLossParameter", F("norm", 1, "HingeNorm"))
define_message(
    "ImageDataParameter",
    F("source", 1, "string"), F("scale", 2, "float", default=1.0), F("mean_file", 3, "string"),
    F("batch_size", 4, "uint32", default=1), F("crop_size", 5, "uint32"), F("mirror", 6, "bool"),
    F("rand_skip", 7, "uint32"), F("shuffle", 8, "bool"), F("new_height", 9, "uint32"),
    F("new_width", 10, "uint32"), F("is_color", 11, "bool", default=True), F("root_folder", 12, "string"),
    F("ignore_label", 15, "int32", default=255), F("label_type", 16, "LabelType", default="IMAGE"))
define_message(
    "InfogainLossParameter", F("source", 1, "string"), F("axis", 2, "int32", default=1))
define_message(
    "InnerProductParameter",
    F("num_output", 1, "uint32"), F("bias_term", 2, "bool", default=True),
    F("weight_filler", 3, "FillerParameter"), F("bias_filler", 4, "FillerParameter"),
    F("axis", 5, "int32", default=1), F("transpose", 6, "bool"))
define_message("InputParameter", F("shape", 1, "BlobShape", "repeated"))
define_message(
    "LogParameter",
    F("base", 1, "float", default=-1.0), F("scale", 2, "float", default=1.0), F("shift", 3, "float"))
define_message(
    "LRNParameter",
    F("local_size", 1, "uint32", default=5), F("alpha", 2, "float", default=1.0),
    F("beta", 3, "float", default=0.75), F("norm_region", 4, "NormRegion"), F("k", 5, "float", default=1.0),
    F("engine", 6, "Engine"))
define_message(
    "MemoryDataParameter",
    F("batch_size", 1, "uint32"), F("channels", 2, "uint32"), F("height", 3, "uint32"),
    F("width", 4, "uint32"))
define_message(
    "MVNParameter",
    F("normalize_variance", 1, "bool", default=True), F("across_channels", 2, "bool"),
    F("eps", 3, "float", default=1e-9))
define_message("ParameterParameter", F("shape", 1, "BlobShape"))
define_message(
    "PoolingParameter",
    F("pool", 1, "PoolMethod"), F("kernel_size", 2, "uint32"), F("stride", 3, "uint32", default=1),
    F("pad", 4, "uint32"), F("kernel_h", 5, "uint32"), F("kernel_w", 6, "uint32"), F("stride_h", 7, "uint32"),
    F("stride_w", 8, "uint32"), F("pad_h", 9, "uint32"), F("pad_w", 10, "uint32"), F("engine", 11, "Engine"),
    F("global_pooling", 12, "bool"), F("round_mode", 13, "RoundMode"))
define_message(
    "PowerParameter",
    F("power", 1, "float", default=1.0), F("scale", 2, "float", default=1.0), F("shift", 3, "float"))
define_message(
    "PythonParameter",
    F("module", 1, "string"), F("layer", 2, "string"), F("param_str", 3, "string"),
    F("share_in_parallel", 4, "bool"))
define_message(
    "RecurrentParameter",
    F("num_output", 1, "uint32"), F("weight_filler", 2, "FillerParameter"),
    F("bias_filler", 3, "FillerParameter"), F("debug_info", 4, "bool"), F("expose_hidden", 5, "bool"))
define_message(
    "ReductionParameter",
    F("operation", 1, "ReductionOp"), F("axis", 2, "int32"), F("coeff", 3, "float", default=1.0))
define_message(
    "ReLUParameter", F("negative_slope", 1, "float"), F("engine", 2, "Engine"))
define_message(
    "ReshapeParameter",
    F("shape", 1, "BlobShape"), F("axis", 2, "int32"), F("num_axes", 3, "int32", default=-1))
define_message(
    "ScaleParameter",
    F("axis", 1, "int32", default=1), F("num_axes", 2, "int32", default=1), F("filler", 3, "FillerParameter"),
    F("bias_term", 4, "bool"), F("bias_filler", 5, "FillerParameter"))
define_message("SigmoidParameter", F("engine", 1, "Engine"))
define_message(
    "SliceParameter",
    F("slice_dim", 1, "uint32", default=1), F("slice_point", 2, "uint32", "repeated"),
    F("axis", 3, "int32", default=1))
define_message("SoftmaxParameter", F("engine", 1, "Engine"), F("axis", 2, "int32", default=1))
define_message("SwishParameter", F("beta", 1, "float", default=1.0))
define_message("TanHParameter", F("engine", 1, "Engine"))
define_message("TileParameter", F("axis", 1, "int32", default=1), F("tiles", 2, "int32"))
define_message("ThresholdParameter", F("threshold", 1, "float"))
define_message(
    "WindowDataParameter",
    F("source", 1, "string"), F("scale", 2, "float", default=1.0), F("mean_file", 3, "string"),
    F("batch_size", 4, "uint32"), F("crop_size", 5, "uint32"), F("mirror", 6, "bool"),
    F("fg_threshold", 7, "float", default=0.5), F("bg_threshold", 8, "float", default=0.5),
    F("fg_fraction", 9, "float", default=0.25), F("context_pad", 10, "uint32"),
    F("crop_mode", 11, "string", default="warp"), F("cache_images", 12, "bool"),
    F("root_folder", 13, "string"))
define_message(
    "SPPParameter",
    F("pyramid_height", 1, "uint32"), F("pool", 2, "PoolMethod"), F("engine", 6, "Engine"))
define_message(
    "PReLUParameter", F("filler", 1, "FillerParameter"), F("channel_shared", 2, "bool"))
define_message(
    "BatchNormParameter",
    F("use_global_stats", 1, "bool"), F("moving_average_fraction", 2, "float", default=0.999),
    F("eps", 3, "float", default=1e-5))
define_message(
    "BiasParameter",
    F("axis", 1, "int32", default=1), F("num_axes", 2, "int32", default=1), F("filler", 3, "FillerParameter"))
define_message("ClipParameter", F("min", 1, "float", "required"), F("max", 2, "float", "required"))

# -- CRF-as-RNN -------------------------------------------------------------------------------------------
define_message(
    "MultiStageMeanfieldParameter",
    F("compatibility_mode", 1, "MeanfieldMode"), F("threshold", 2, "float"),
    F("theta_alpha", 3, "float", "required", default=10.0), F("theta_beta", 4, "float", "required", default=10.0),
    F("theta_gamma", 5, "float", "required", default=10.0),
    F("num_iterations", 6, "uint32", "required", default=1),
    F("spatial_filter_weight", 7, "float", default=1.0), F("bilateral_filter_weight", 8, "float", default=1.0),
    F("forced_spatial_filter_weight", 9, "float"), F("forced_bilateral_filter_weight", 10, "float"),
    F("spatial_filter_weights_str", 19, "string"), F("bilateral_filter_weights_str", 20, "string"),
    F("force_cpu", 29, "bool"), F("engine", 1001, "MeanfieldEngine"))
define_message(
    "PermutohedralParameter",
    F("kernel", 1, "PermutohedralKernel"), F("theta_alpha", 2, "float", default=10.0),
    F("theta_beta", 3, "float", default=10.0), F("theta_gamma", 4, "float", default=10.0))
define_message(
    "CompatibilityParameter",
    F("num_output", 1, "uint32"), F("weight_filler", 2, "FillerParameter"), F("diagonal_str", 3, "string"))

# -- legacy layer messages ----------------------------------------------------------------------------------
#: ``(field name, number)`` of the V1LayerParameter sub-messages (type as in LAYER_PARAMS).
V1_LAYER_PARAMS = [
    ("concat_param", 9), ("convolution_param", 10), ("data_param", 11), ("dropout_param", 12),
    ("hdf5_data_param", 13), ("hdf5_output_param", 14), ("image_data_param", 15), ("infogain_loss_param", 16),
    ("inner_product_param", 17), ("lrn_param", 18), ("pooling_param", 19), ("window_data_param", 20),
    ("power_param", 21), ("memory_data_param", 22), ("argmax_param", 23), ("eltwise_param", 24),
    ("threshold_param", 25), ("dummy_data_param", 26), ("accuracy_param", 27), ("hinge_loss_param", 29),
    ("relu_param", 30), ("slice_param", 31), ("mvn_param", 34), ("transform_param", 36), ("tanh_param", 37),
    ("sigmoid_param", 38), ("softmax_param", 39), ("contrastive_loss_param", 40), ("exp_param", 41),
    ("loss_param", 42), ("multi_stage_meanfield_param", 44),
]
_PARAM_TYPES = {name: type_name for name, _, type_name in LAYER_PARAMS}
define_message(
    "V1LayerParameter",
    F("layer", 1, "V0LayerParameter"), F("bottom", 2, "string", "repeated"), F("top", 3, "string", "repeated"),
    F("name", 4, "string"), F("type", 5, "V1LayerType"), F("blobs", 6, "BlobProto", "repeated"),
    F("blobs_lr", 7, "float", "repeated"), F("weight_decay", 8, "float", "repeated"),
    F("include", 32, "NetStateRule", "repeated"), F("exclude", 33, "NetStateRule", "repeated"),
    F("loss_weight", 35, "float", "repeated"), F("param", 1001, "string", "repeated"),
    F("blob_share_mode", 1002, "DimCheckMode", "repeated"),
    *[F(name, number, _PARAM_TYPES[name]) for name, number in V1_LAYER_PARAMS])
define_message(
    "V0LayerParameter",
    F("name", 1, "string"), F("type", 2, "string"), F("num_output", 3, "uint32"),
    F("biasterm", 4, "bool", default=True), F("weight_filler", 5, "FillerParameter"),
    F("bias_filler", 6, "FillerParameter"), F("pad", 7, "uint32"), F("kernelsize", 8, "uint32"),
    F("group", 9, "uint32", default=1), F("stride", 10, "uint32", default=1), F("pool", 11, "PoolMethod"),
    F("dropout_ratio", 12, "float", default=0.5), F("local_size", 13, "uint32", default=5),
    F("alpha", 14, "float", default=1.0), F("beta", 15, "float", default=0.75), F("source", 16, "string"),
    F("scale", 17, "float", default=1.0), F("meanfile", 18, "string"), F("batchsize", 19, "uint32"),
    F("cropsize", 20, "uint32"), F("mirror", 21, "bool"), F("k", 22, "float", default=1.0),
    F("blobs", 50, "BlobProto", "repeated"), F("blobs_lr", 51, "float", "repeated"),
    F("weight_decay", 52, "float", "repeated"), F("rand_skip", 53, "uint32"),
    F("det_fg_threshold", 54, "float", default=0.5), F("det_bg_threshold", 55, "float", default=0.5),
    F("det_fg_fraction", 56, "float", default=0.25), F("det_context_pad", 58, "uint32"),
    F("det_crop_mode", 59, "string", default="warp"), F("new_num", 60, "int32"),
    F("new_channels", 61, "int32"), F("new_height", 62, "int32"), F("new_width", 63, "int32"),
    F("shuffle_images", 64, "bool"), F("concat_dim", 65, "uint32", default=1),
    F("hdf5_output_param", 1001, "HDF5OutputParameter"))

resolve_schema()


def _round_float_defaults():
    """Caffe keeps float fields (and their defaults) in single precision: 1e-8 reads back as 9.99999994e-9."""
    for mtype in SCHEMA.values():
        for f in mtype.fields.values():
            if f.kind == "float" and not f.repeated:
                f.default = to_float32(f.default)


_round_float_defaults()
