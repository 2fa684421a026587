"""What a model from a remote source may run: an allow-list of op types, checked before its graph
is imported.

A checkpoint's meta graph is a program: ``from_disk`` imports it and runs its restore op, and
``predict``/``evaluate`` run more of it. A local model directory is the user's own and is
trusted as it is. A graph that comes from a tracking store (``runs:/``, ``models:/``, a download
cache entry) is checked first (``check_meta_graph``): every node of the graph and of its function
library must be of a type on ``ALLOWED_OPS``, else ``UnsafeModelError`` names the op and its node,
and nothing is imported. Besides the list:

- the saver's own ops (``SaverDef``) may save and restore, and only there: ``SaveV2``,
  ``RestoreV2`` and ``MergeV2Checkpoints`` must sit in the saver's name scope and take their
  paths from its filename tensor, with no other path (absolute, or climbing with ``..``) mixed in;
- ``PrintV2`` may print to stderr, stdout or the log, never to a file (``file://...``);
- ``DatasetFromGraph`` (the input stage, ``streams.py``) may only read the dataset fed to its
  placeholder, never one the graph carries.

``ALLOWED_OPS`` is measured, not guessed: the op types of every meta graph and SavedModel the
test suite writes (the package's own models, the examples, the estimator front end's exports;
1,906 files) and of a set of model functions using tf.layers (dense, dropout, batch norm,
conv1d/2d/3d, transposed, separable and depthwise convolutions, pooling), tf.nn (activations,
RNN cells in dynamic, bidirectional and static RNNs, embeddings, sampled losses), every tf.losses
loss, every tf.metrics metric, the v1 optimizers, learning-rate decays, gradient clipping, moving
averages, tf.image, tf.strings hashing, control flow, random ops and summaries (244 types; issue
30's report). File I/O (``WriteFile``, ``ReadFile``, ``MatchingFiles``, summary file writers,
readers of files as datasets, tables initialized from files), Python calls (``PyFunc``,
``EagerPyFunc``) and every other side effect are not on it. A model that needs an op beyond it
loads from a store the user trusts with ``from_disk(..., trust_store=True)``. What remains: a model
is a program; see docs/robustness.md.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import UnsafeModelError

ALLOWED_OPS = frozenset(
    """
    Abs AddN AddV2 AdjustContrastv2 All Any ArgMax ArgMin Assert AssignAddVariableOp AssignSubVariableOp
    AssignVariableOp Atan AvgPool AvgPoolGrad BatchMatMulV2 BiasAdd BiasAddGrad BroadcastGradientArgs BroadcastTo
    Cast Ceil CheckNumerics ComputeAccidentalHits ConcatOffset ConcatV2 Const Conv2D Conv2DBackpropFilter
    Conv2DBackpropInput Conv3D Conv3DBackpropFilterV2 Conv3DBackpropInputV2 Cos Cumprod Cumsum DatasetFromGraph
    DenseBincount DenseToDenseSetOperation DepthwiseConv2dNative DepthwiseConv2dNativeBackpropFilter
    DepthwiseConv2dNativeBackpropInput DestroyResourceOp DiagPart DivNoNan DynamicStitch Einsum Elu EluGrad
    EmptyTensorList Equal Erf Exp ExpandDims Expm1 Fill Floor FloorDiv FloorMod FusedBatchNormGradV3
    FusedBatchNormV3 GatherNd GatherV2 Greater GreaterEqual HistogramSummary Identity IdentityN If ImageSummary
    InvertPermutation IsFinite IsNan IteratorGetNext IteratorV2 L2Loss LRN LRNGrad LeakyRelu LeakyReluGrad Less
    LessEqual ListDiff Log Log1p LogSoftmax LogUniformCandidateSampler LogicalAnd LogicalNot LogicalOr MakeIterator
    MatMul MatrixBandPart MatrixDiagPartV3 MatrixDiagV3 Max MaxPool MaxPoolGrad Maximum Mean Merge MergeSummary
    MergeV2Checkpoints Min Minimum Mul Multinomial Neg NoOp NotEqual OneHot OptionalFromValue OptionalGetValue
    OptionalNone Pack Pad ParseExampleV2 Placeholder PlaceholderWithDefault Pow PrintV2 Prod Qr RGBToHSV
    RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt Range Rank ReadVariableOp RealDiv Reciprocal
    ReciprocalGrad Relu Relu6 Relu6Grad ReluGrad Reshape ResizeBilinear ResizeBilinearGrad ResizeNearestNeighbor
    ResizeNearestNeighborGrad ResourceApplyAdadelta ResourceApplyAdagrad ResourceApplyAdagradDA ResourceApplyAdam
    ResourceApplyCenteredRMSProp ResourceApplyFtrl ResourceApplyGradientDescent ResourceApplyMomentum
    ResourceApplyProximalAdagrad ResourceApplyProximalGradientDescent ResourceApplyRMSProp ResourceGather
    ResourceScatterAdd ResourceSparseApplyAdadelta ResourceSparseApplyAdagrad ResourceSparseApplyAdagradDA
    ResourceSparseApplyCenteredRMSProp ResourceSparseApplyFtrl ResourceSparseApplyMomentum
    ResourceSparseApplyProximalAdagrad ResourceSparseApplyProximalGradientDescent ResourceSparseApplyRMSProp
    RestoreV2 ReverseSequence ReverseV2 Round Rsqrt RsqrtGrad SaveV2 ScalarSummary ScatterNd SegmentSum Select
    SelectV2 Selu SeluGrad SetSize Shape ShapeN ShardedFilename Sigmoid SigmoidGrad Sign Sin Size Slice Softmax
    SoftmaxCrossEntropyWithLogits Softplus Softsign SoftsignGrad SparseSegmentMean SparseSegmentMeanGrad
    SparseSoftmaxCrossEntropyWithLogits SparseToDense Split Sqrt SqrtGrad Square SquaredDifference Squeeze
    StatelessIf StatelessRandomGetKeyCounter StatelessRandomUniformV2 StatelessWhile StaticRegexFullMatch
    StopGradient StridedSlice StridedSliceGrad StringFormat StringJoin StringSplitV2 StringToHashBucket
    StringToHashBucketFast StringToHashBucketStrong Sub Sum Switch Tanh TanhGrad TensorListElementShape
    TensorListFromTensor TensorListGetItem TensorListLength TensorListPopBack TensorListPushBack TensorListReserve
    TensorListSetItem TensorListStack Tile TopKV2 Transpose TruncatedNormal Unique Unpack UnsortedSegmentSum
    VarHandleOp VarIsInitializedOp Where While ZerosLike
    """.split()
)
SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})  # allowed in the saver's scope only
PATH_INPUTS = {"SaveV2": (0,), "RestoreV2": (0,), "MergeV2Checkpoints": (0, 1)}
PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})
#: why some ops a planted graph would use are refused (the rest: "not an op a model needs")
KNOWN_UNSAFE = {
    **dict.fromkeys(("WriteFile", "Save", "SaveSlices", "SaveDataset", "SnapshotDataset"), "writes files"),
    **dict.fromkeys(("ReadFile", "Restore", "RestoreSlice", "ImmutableConst", "LoadDataset"), "reads files"),
    **dict.fromkeys(("MatchingFiles", "MatchingFilesDataset"), "lists files"),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "calls Python"),
    **dict.fromkeys(
        ("CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary", "WriteRawProtoSummary", "DebugIdentity"),
        "writes files",
    ),
    **dict.fromkeys(
        ("TFRecordDataset", "TextLineDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CacheDatasetV2"),
        "reads or writes files",
    ),
    **dict.fromkeys(("InitializeTableFromTextFile", "InitializeTableFromTextFileV2"), "reads a file"),
}
TRUST_HINT = (
    "load it with from_disk(..., trust_store=True) (elistimator download: --trust-store) only if you trust "
    "whoever can write that store"
)


def check_meta_file(path: Path, source: str) -> None:
    """Check the meta graph in ``path`` (from ``source``, for the message) before it is imported."""
    from ._tf import tf  # quiet: _tf.py silences TensorFlow's start-up lines

    meta = tf.MetaGraphDef()
    meta.ParseFromString(Path(path).read_bytes())
    check_meta_graph(meta, source)


def check_model_directory(directory: Path, source: str) -> None:
    """Check the meta graph of every checkpoint of the model directory at ``directory`` (a download of
    ``source``: ``elistimator download`` checks it before it becomes a local, trusted directory)."""
    from . import metadata as metadata_file
    from .model_dir import ModelDirectory

    model = ModelDirectory(directory)
    for record in metadata_file.read(model).index.records.values():
        meta = model.resolve(record.prefix + ".meta")
        if meta.is_file():
            check_meta_file(meta, source)


def check_meta_graph(meta: Any, source: str) -> None:
    """Raise ``UnsafeModelError`` naming the first nodes of ``meta`` (a ``MetaGraphDef``) a model
    from ``source`` may not run (see the module docstring)."""
    problems = list(_problems(meta))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UnsafeModelError(
            f"the model from {source} holds ops a restored model may not run: {shown}. A model's graph is a "
            f"program, and one from a tracking store is checked against the ops models need; {TRUST_HINT}"
        )


def _problems(meta: Any) -> Iterator[str]:
    graph = meta.graph_def
    nodes = {node.name: node for node in graph.node}
    saver = meta.saver_def if meta.HasField("saver_def") else None
    for node in graph.node:
        yield from _node_problems(node, nodes, saver, "")
    for function in graph.library.function:
        for node in function.node_def:
            yield from _node_problems(node, {}, None, f" in function {function.signature.name!r}")


def _node_problems(node: Any, nodes: dict[str, Any], saver: Any, where: str) -> Iterator[str]:
    named = f"{node.op} (node {node.name!r}{where})"
    if node.op in SAVER_OPS:
        problem = _saver_problem(node, nodes, saver)
        if problem:
            yield f"{named}, {problem}"
    elif node.op not in ALLOWED_OPS:
        yield f"{named}, which {KNOWN_UNSAFE.get(node.op, 'is not an op a model needs')}"
    elif node.op == "PrintV2":
        stream = node.attr["output_stream"].s.decode("utf-8", "replace")
        if stream not in PRINT_STREAMS:
            yield f"{named}, which prints to {stream!r} (a file)"
    elif node.op == "DatasetFromGraph":
        source = nodes.get(_input_name(node.input[0])) if node.input else None
        if source is None or source.op != "Placeholder":
            yield f"{named}, which reads a dataset the graph carries instead of the one fed to it"


def _saver_problem(node: Any, nodes: dict[str, Any], saver: Any) -> str | None:
    """Why a save or restore op is not the saver's own (None: it is)."""
    if saver is None or not nodes:
        return "which writes or reads checkpoint files outside the model's saver"
    scope = saver.restore_op_name.rsplit("/", 1)[0] + "/"
    filename = _input_name(saver.filename_tensor_name)
    if not node.name.startswith(scope):
        return f"which writes or reads checkpoint files outside the saver's scope {scope!r}"
    for index in PATH_INPUTS[node.op]:
        if index >= len(node.input):
            return "which has no path input"
        ancestors = _ancestors(_input_name(node.input[index]), nodes)
        if filename not in ancestors:
            return "whose path does not come from the saver's filename"
        for name in ancestors:
            bad = [value for value in _strings(nodes[name]) if _leaves(value)]
            if bad:
                return f"whose path holds {bad[0]!r}"
    return None


def _ancestors(start: str, nodes: dict[str, Any]) -> set[str]:
    """``start`` and every node its data inputs come from, within ``nodes``."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        todo.extend(_input_name(i) for i in nodes[name].input if not i.startswith("^"))
    return seen


def _input_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":", 1)[0]


def _strings(node: Any) -> Iterable[str]:
    if node.op != "Const" or "value" not in node.attr:
        return []
    return [value.decode("utf-8", "replace") for value in node.attr["value"].tensor.string_val]


def _leaves(value: str) -> bool:
    """Whether a string in a checkpoint path would take it elsewhere: absolute, or with ``..``."""
    return value.startswith(("/", "\\")) or "://" in value or ".." in posixpath.normpath(value).split("/")
