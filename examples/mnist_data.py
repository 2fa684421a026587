"""Where MNIST is, and how to read it: one rule for the docs, the examples, the benchmarks and the tests.

The MNIST idx files (``*-ubyte.gz``) are in ``$ELISTIMATOR_MNIST_DIR`` when it is set, else in
``data/mnist`` at the root of the clone (ignored by git). Nothing here downloads: ``how_to_get``
prints the command that does. A directory with only the 10,000 test images (``t10k-*``) is
enough for every example and benchmark. No TensorFlow here: the tests' set-up imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

VARIABLE = "ELISTIMATOR_MNIST_DIR"
#: where the files are when the variable is not set: data/mnist at the root of the clone
CLONE_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
ALL_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz") + TEST_FILES
MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # the CVDF mirror of yann.lecun.com/exdb/mnist
DOWNLOAD = (
    "import os, mnist; os.makedirs({directory!r}, exist_ok=True); mnist.datasets_url = {mirror!r}; "
    "[mnist.download_file(f, {directory!r}) for f in {files!r}]"
)
HOW_TO_GET = """MNIST was not found in {directory}.
The examples read local idx files (they do not download). Get them with network access:
    python -c "{download}"
(or copy {files} into one directory, and set {variable} to it when it is not {default}, or pass --data-dir)."""


def mnist_dir() -> Path:
    """The directory of the MNIST idx files: ``$ELISTIMATOR_MNIST_DIR``, else ``data/mnist`` in the clone."""
    return Path(os.environ.get(VARIABLE) or CLONE_DIR)


def has_test_set(directory: Path) -> bool:
    return all((Path(directory) / name).is_file() for name in TEST_FILES)


def how_to_get(directory: Path) -> str:
    """What to run to fetch MNIST into ``directory`` (created if missing)."""
    download = DOWNLOAD.format(directory=str(directory), mirror=MIRROR, files=ALL_FILES)
    return HOW_TO_GET.format(
        directory=directory, download=download, files=", ".join(ALL_FILES), variable=VARIABLE, default=CLONE_DIR
    )


def load_mnist(data_dir=None):
    """MNIST as flattened float32 images and int32 labels, through the ``mnist`` package.

    Reads the ``*-ubyte.gz`` files in ``data_dir`` (default: ``mnist_dir()``) instead of
    downloading. Returns ``{'train': (images, labels) or None, 'test': (images, labels)}``:
    a directory may hold only the test set (``t10k-*``).
    """
    import mnist
    import numpy as np

    directory = str(data_dir if data_dir is not None else mnist_dir())
    mnist.temporary_dir = lambda: directory

    def flat(images):
        return images.reshape((images.shape[0], images.shape[1] * images.shape[2])).astype(np.float32)

    def maybe(images_fn, labels_fn):
        try:
            return flat(images_fn()), labels_fn().astype(np.int32)
        except OSError:
            return None

    return {"train": maybe(mnist.train_images, mnist.train_labels), "test": maybe(mnist.test_images, mnist.test_labels)}
