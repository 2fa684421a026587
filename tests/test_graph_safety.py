"""The store cannot plant code (issue 30, finding 3a): a graph restored from a tracking store may hold only
the ops a model needs.

Before the fix, a ``WriteFile`` op added to a checkpoint's meta graph on the store's artifact disk,
wired into the saver's restore op, with the sha256 in the artifact's own ``elistimator.json``
updated, ran at ``from_disk('runs:/...')`` (the file was written; measured on main 5fa99ec).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import dataset_fn, target_model_fn, targets, tiny_model_fn, train_epochs, zero_targets
from mlflow import MlflowClient
from tensorflow.core.protobuf import meta_graph_pb2

from elistimator_tracking import Elistimator, ModelDirectoryError, UnsafeModelError
from elistimator_tracking.graph_safety import check_meta_graph
from elistimator_tracking.tracking.names import CHECKSUMS_TAG


def const(meta, name: str, value: str):
    node = meta.graph_def.node.add()
    node.name, node.op = name, "Const"
    node.attr["dtype"].type = 7  # DT_STRING
    tensor = node.attr["value"].tensor
    tensor.dtype = 7
    tensor.string_val.append(value.encode())
    tensor.tensor_shape.SetInParent()
    return node


def plant_write_file(meta, target: Path) -> None:
    """A WriteFile of ``target`` that runs whenever the saver restores."""
    const(meta, "planted/filename", str(target))
    const(meta, "planted/contents", "written by whoever can write the store")
    node = meta.graph_def.node.add()
    node.name, node.op = "planted/WriteFile", "WriteFile"
    node.input.extend(["planted/filename", "planted/contents"])
    for restore in meta.graph_def.node:
        if restore.name == meta.saver_def.restore_op_name:
            restore.input.append("^planted/WriteFile")


def plant_in_store(artifact_root: Path, mutate, database: MlflowClient | None = None) -> int:
    """Apply ``mutate(meta)`` to every checkpoint meta graph under ``artifact_root`` (a store's artifact
    disk) and update its checksum in the ``elistimator.json`` beside it; with ``database`` (a client of
    the store), also in the checksums its database recorded for the logged model: an attacker who can
    write both. Returns how many were changed."""
    changed = 0
    for path in artifact_root.rglob("model-*.meta"):
        meta = meta_graph_pb2.MetaGraphDef.FromString(path.read_bytes())
        mutate(meta)
        path.write_bytes(meta.SerializeToString())
        recorded = path.parent.parent / "elistimator.json"
        data = json.loads(recorded.read_text())
        for entry in data["checkpoints"].values():
            if path.name in entry["files"]:
                entry["files"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
                model = re.search(r"/models/(m-[0-9a-f]+)/", path.as_posix())
                if database is not None and model:
                    database.set_logged_model_tags(model.group(1), {CHECKSUMS_TAG: json.dumps(entry["files"])})
        recorded.write_text(json.dumps(data))
        changed += 1
    return changed


@pytest.fixture
def tracked(tmp_path, data):
    """A tiny model trained an epoch and registered, tracked to a store of its own in ``tmp_path``."""
    (x, y), (vx, vy) = data
    store, artifacts = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "artifacts"  # the store's artifact disk
    MlflowClient(store).create_experiment("plant", artifact_location=artifacts.as_uri())
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store, experiment="plant") as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        est.register_best("planted")
        run_id = est.run_id
    return {"store": store, "run_id": run_id, "artifacts": artifacts, "model_dir": tmp_path / "model"}


@pytest.mark.parametrize("source", ["runs:/{run_id}", "models:/planted/1", "models:/planted@champion"])
def test_a_write_file_planted_in_the_stores_files_alone_is_refused_by_the_databases_checksums(
    tmp_path, tracked, source
):
    """Whoever can write the artifact store but not its database: the files no longer match what the
    database recorded when they were logged, whatever the elistimator.json beside them says."""
    target = tmp_path / "planted.txt"
    assert plant_in_store(tracked["artifacts"], lambda meta: plant_write_file(meta, target)) == 1  # one copy
    for trusted in (False, True):
        with pytest.raises(ModelDirectoryError, match="is not the one the tracking store recorded"):
            Elistimator.from_disk(
                source.format(run_id=tracked["run_id"]),
                verbose=False,
                tracking=tracked["store"],
                cache_dir=tmp_path / "cache",
                trust_store=trusted,
            )
    assert not target.exists()


@pytest.mark.parametrize("source", ["runs:/{run_id}", "models:/planted/1", "models:/planted@champion"])
def test_a_write_file_planted_in_the_stores_checkpoint_is_refused_naming_it(tmp_path, tracked, source):
    target = tmp_path / "planted.txt"
    database = MlflowClient(tracked["store"])  # writes the files and the database: only the allow-list is left
    assert plant_in_store(tracked["artifacts"], lambda meta: plant_write_file(meta, target), database) == 1
    source = source.format(run_id=tracked["run_id"])
    with pytest.raises(UnsafeModelError, match=r"WriteFile \(node 'planted/WriteFile'\), which writes files") as caught:
        Elistimator.from_disk(source, verbose=False, tracking=tracked["store"], cache_dir=tmp_path / "cache")
    assert source in str(caught.value) and "trust_store=True" in str(caught.value)
    assert isinstance(caught.value, ModelDirectoryError)
    assert not target.exists()
    # the documented opt-out: a store whose writers you trust (here it shows what trusting means)
    est = Elistimator.from_disk(
        source, verbose=False, tracking=tracked["store"], cache_dir=tmp_path / "cache", trust_store=True
    )
    est.close()
    assert target.read_text() == "written by whoever can write the store"


def test_elistimator_download_checks_the_graph_before_it_becomes_a_local_directory(tmp_path, tracked):
    """A downloaded copy is a local model directory, which ``from_disk`` trusts: the command checks first."""
    import subprocess
    import sys

    target = tmp_path / "planted.txt"
    plant_in_store(tracked["artifacts"], lambda meta: plant_write_file(meta, target), MlflowClient(tracked["store"]))
    command = [str(Path(sys.executable).parent / "elistimator"), "download", f"runs:/{tracked['run_id']}"]
    store = ["--tracking-uri", tracked["store"]]
    done = subprocess.run([*command, str(tmp_path / "copy"), *store], capture_output=True, text=True, timeout=300)
    last = done.stderr.splitlines()[-1]  # after TensorFlow's start-up lines
    assert done.returncode == 1 and last.startswith("elistimator download: error: the model from runs:/"), last
    assert "WriteFile (node 'planted/WriteFile'), which writes files" in last and "--trust-store" in last
    assert not (tmp_path / "copy").exists()
    trusted = [*command, str(tmp_path / "trusted"), *store, "--trust-store"]
    assert subprocess.run(trusted, capture_output=True, timeout=300).returncode == 0
    assert (tmp_path / "trusted" / "elistimator.json").is_file() and not target.exists()


def test_a_local_model_directory_is_trusted_as_it_is(tmp_path, tracked):
    """The user's own model directory is not checked (docs/robustness.md): its graph is the user's program."""
    target = tmp_path / "local.txt"
    directory = tracked["model_dir"]
    assert plant_in_store(directory, lambda meta: plant_write_file(meta, target)) == 1
    Elistimator.from_disk(directory, verbose=False, tracking=False).close()
    assert target.exists()


def saved_meta(tmp_path, data) -> meta_graph_pb2.MetaGraphDef:
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "m", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"sharded": True})
        est.train(steps=1).save_ckpt()
    return meta_graph_pb2.MetaGraphDef.FromString((tmp_path / "m" / "checkpoints" / "model-1.meta").read_bytes())


def add(meta, name: str, op: str, inputs=(), graph=None, **attrs):
    node = (graph if graph is not None else meta.graph_def).node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    for key, value in attrs.items():
        node.attr[key].s = value.encode()
    return node


def py_func(meta):
    add(meta, "planted/PyFunc", "PyFunc", token="pyfunc_0")


def read_file(meta):
    const(meta, "planted/name", "/etc/hostname")
    add(meta, "planted/ReadFile", "ReadFile", ["planted/name"])


def matching_files(meta):
    const(meta, "planted/pattern", "/home/*")
    add(meta, "planted/MatchingFiles", "MatchingFiles", ["planted/pattern"])


def save_outside_the_saver(meta):
    add(meta, "planted/SaveV2", "SaveV2", ["save/Const", "save/SaveV2/tensor_names", "save/SaveV2/shape_and_slices"])


def save_elsewhere_inside_the_saver(meta):
    const(meta, "save/elsewhere", "/tmp/elsewhere/model")
    add(meta, "save/SaveV2_planted", "SaveV2", ["save/elsewhere", "save/SaveV2/tensor_names"])


def save_climbing_out(meta):
    const(meta, "save/climb", "/../../../../home/user/model")
    add(meta, "save/join", "StringJoin", ["save/Const", "save/climb"])
    add(meta, "save/SaveV2_planted", "SaveV2", ["save/join", "save/SaveV2/tensor_names"])


def print_to_a_file(meta):
    const(meta, "planted/text", "x")
    add(meta, "planted/PrintV2", "PrintV2", ["planted/text"], output_stream="file:///tmp/printed.txt")


def dataset_the_graph_carries(meta):
    const(meta, "planted/graph_def", "serialized dataset graph")
    add(meta, "planted/DatasetFromGraph", "DatasetFromGraph", ["planted/graph_def"])


def write_file_in_a_function(meta):
    function = meta.graph_def.library.function.add()
    function.signature.name = "innocent_looking"
    add(meta, "WriteFile_in_body", "WriteFile", graph=type("F", (), {"node": function.node_def})())


@pytest.mark.parametrize(
    "plant, expected",
    [
        (py_func, r"PyFunc \(node 'planted/PyFunc'\), which calls Python"),
        (read_file, r"ReadFile \(node 'planted/ReadFile'\), which reads files"),
        (matching_files, r"MatchingFiles \(node 'planted/MatchingFiles'\), which lists files"),
        (save_outside_the_saver, r"SaveV2 \(node 'planted/SaveV2'\), which writes or reads checkpoint files outside"),
        (save_elsewhere_inside_the_saver, r"SaveV2 \(node 'save/SaveV2_planted'\), whose path does not come from"),
        (save_climbing_out, r"SaveV2 \(node 'save/SaveV2_planted'\), whose path holds '/\.\./"),
        (print_to_a_file, r"PrintV2 \(node 'planted/PrintV2'\), which prints to 'file:///tmp/printed\.txt'"),
        (dataset_the_graph_carries, r"DatasetFromGraph \(node 'planted/DatasetFromGraph'\), which reads a dataset"),
        (write_file_in_a_function, r"WriteFile \(node 'WriteFile_in_body' in function 'innocent_looking'\)"),
    ],
)
def test_the_allow_list_refuses_file_io_python_calls_and_other_side_effects(tmp_path, data, plant, expected):
    meta = saved_meta(tmp_path, data)
    check_meta_graph(meta, "runs:/x")  # the model as saved passes, its sharded saver included
    plant(meta)
    with pytest.raises(UnsafeModelError, match=expected):
        check_meta_graph(meta, "runs:/x")


def test_the_package_models_and_the_examples_pass_the_allow_list(tmp_path, data):
    """Every graph the package writes loads from a store: the tiny and target models here, the MNIST CNN
    of the examples; the whole suite's remote restores (test_restore_remote, test_registry, ...) too."""
    from conftest import import_example

    (x, y), (vx, vy) = data
    cnn = import_example("mnist_cnn")
    images = (tmp_path / "cnn", cnn.cnn_model_fn, {"img_width": 28, "img_height": 28, "learning_rate": 0.01})
    models = [
        (tmp_path / "tiny", tiny_model_fn, {}, dataset_fn(x, y)),
        (tmp_path / "target", target_model_fn, {}, targets(1.0)),
        (*images, dataset_fn_images()),
    ]
    for model_dir, model_fn, params, input_fn in models:
        with Elistimator(model_fn, model_dir, params=params, verbose=False, tracking=False) as est:
            est.setup(input_fn, zero_targets if model_fn is target_model_fn else input_fn)
            est.train(steps=1).validate()
            est.save_ckpt()
        for meta in model_dir.rglob("*.meta"):
            check_meta_graph(meta_graph_pb2.MetaGraphDef.FromString(meta.read_bytes()), str(model_dir))


def dataset_fn_images():
    import numpy as np

    from elistimator_tracking._tf import tf

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(8, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 8).astype(np.int32)
    return lambda: tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels}).batch(4)


@pytest.mark.parametrize(
    "model_fn, input_fn, optimizer",
    [
        ("conv_model_fn", "images_input_fn", "AdamOptimizer"),
        ("conv_model_fn", "images_input_fn", "FtrlOptimizer"),
        ("sequence_model_fn", "sequences_input_fn", "RMSPropOptimizer"),
        ("sequence_model_fn", "sequences_input_fn", "AdagradOptimizer"),
        ("math_model_fn", "images_input_fn", "AdadeltaOptimizer"),
    ],
)
def test_what_tf1_models_are_built_from_passes_the_allow_list(tmp_path, model_fn, input_fn, optimizer):
    """The measurement ALLOWED_OPS came from, kept: tf.layers, tf.nn, every tf.losses loss and tf.metrics
    metric, v1 optimizers, control flow, tf.image, random ops (``op_zoo.py``). A TensorFlow upgrade
    that changes the ops these are made of fails here, naming the new op."""
    import op_zoo

    from elistimator_tracking._tf import tf

    data = getattr(op_zoo, input_fn)
    params = {"optimizer": getattr(tf.train, optimizer)}
    with Elistimator(getattr(op_zoo, model_fn), tmp_path / "m", params=params, verbose=False, tracking=False) as est:
        est.setup(data, data)  # the graph holds every op whether or not a step runs it: build and save
        est.save_ckpt()
    meta = tmp_path / "m" / "checkpoints" / "model-0.meta"
    check_meta_graph(meta_graph_pb2.MetaGraphDef.FromString(meta.read_bytes()), model_fn)
