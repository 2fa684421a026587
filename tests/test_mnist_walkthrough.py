"""The seed README's walkthrough on the real MNIST images ($ELISTIMATOR_MNIST_DIR, else ../shared/data/mnist)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import import_example, load_mnist_test_set

from elistimator_tracking import Elistimator


@pytest.mark.slow
def test_seed_walkthrough_reaches_well_above_chance(tmp_path, capsys):
    mnist_cnn = import_example("mnist_cnn")
    images, labels = load_mnist_test_set()
    train, held_out = (images[:8000], labels[:8000]), (images[8000:], labels[8000:])
    train_input_fn, validation_input_fn = mnist_cnn.input_fns(train, held_out, mnist_cnn.PARAMS["batch_size"])

    estimator = Elistimator(model_fn=mnist_cnn.cnn_model_fn, model_dir=tmp_path, params=mnist_cnn.PARAMS)
    estimator.setup(
        train_input_fn=train_input_fn, validation_input_fn=validation_input_fn, train_saver_args={"max_to_keep": 3}
    )
    history = [estimator.train().validate() for _ in range(2)]

    assert history[-1]["accuracy"] >= 0.9
    assert history[-1]["loss"] < history[0]["loss"] * 1.1
    assert estimator.global_step == 2 * 143  # ceil(8000 / 56) steps an epoch
    batches = list(estimator.predict(input_fn=validation_input_fn))
    assert sum(len(b["classes"]) for b in batches) == 2000
    assert batches[0]["probabilities"].shape == (56, 10)
    one = estimator.predict(images=held_out[0][:1])
    assert one["classes"].shape == (1,) and one["classes"][0] == batches[0]["classes"][0]
    np.testing.assert_array_equal(estimator.predict(held_out[0][:56])["classes"], batches[0]["classes"])
    assert estimator.evaluate(validation_input_fn) == pytest.approx(history[-1], rel=1e-6)

    prefix = Path(estimator.save_ckpt())
    variable_bytes = sum(v.shape.num_elements() * v.dtype.size for v in estimator.graph.get_collection("variables"))
    checkpoint_bytes = sum(f.stat().st_size for f in prefix.parent.glob(prefix.name + ".*"))
    print(
        f"\nvariables {variable_bytes} B, checkpoint {checkpoint_bytes} B "
        f"(+{checkpoint_bytes - variable_bytes} B: index and meta graph)"
    )
    assert variable_bytes <= checkpoint_bytes <= variable_bytes + 1_000_000  # no MNIST data in the meta graph
    estimator.close()

    restored = Elistimator.from_disk(tmp_path, verbose=False)
    np.testing.assert_array_equal(restored.predict(images=held_out[0][:56])["classes"], batches[0]["classes"])
    restored.close()
    out = capsys.readouterr()
    assert "Training (2): 100%" in out.err and "accuracy=" in out.out
