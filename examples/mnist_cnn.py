"""The seed walkthrough's MNIST model and input functions (the data: ``mnist_data.py``).

``cnn_model_fn`` is the seed README's model function (the TensorFlow layers tutorial
CNN), unchanged but for ``import tensorflow.compat.v1 as tf``.
"""

# first: the package loads TensorFlow quietly (no start-up logs, no notices that TF1 APIs are deprecated)
from elistimator_tracking import EvaluationSpec, PredictSpec, TrainSpec

# isort: split
import tensorflow.compat.v1 as tf


def input_fns(train, validation, batch_size):
    """The seed's training (shuffled) and validation input functions over numpy arrays."""
    (train_images, train_labels), (test_images, test_labels) = train, validation

    def train_input_fn():
        return (
            tf.data.Dataset.from_tensor_slices({"images": train_images, "labels": train_labels})
            .batch(batch_size)
            .prefetch(batch_size)
            .shuffle(buffer_size=1000)
        )

    def validation_input_fn():
        return (
            tf.data.Dataset.from_tensor_slices({"images": test_images, "labels": test_labels})
            .batch(batch_size)
            .prefetch(batch_size)
        )

    return train_input_fn, validation_input_fn


def cnn_model_fn(features, is_training, params):
    input_layer = tf.reshape(features["images"], [-1, params["img_width"], params["img_height"], 1])

    # Convolutional Layer #1
    # Computes 32 features using a 5x5 filter with ReLU activation.
    # Padding is added to preserve width and height.
    # Input Tensor Shape: [batch_size, 28, 28, 1]
    # Output Tensor Shape: [batch_size, 28, 28, 32]
    conv1 = tf.layers.conv2d(inputs=input_layer, filters=32, kernel_size=[5, 5], padding="same", activation=tf.nn.relu)

    # Pooling Layer #1
    # First max pooling layer with a 2x2 filter and stride of 2
    # Input Tensor Shape: [batch_size, 28, 28, 32]
    # Output Tensor Shape: [batch_size, 14, 14, 32]
    pool1 = tf.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)

    # Convolutional Layer #2
    # Computes 64 features using a 5x5 filter.
    # Padding is added to preserve width and height.
    # Input Tensor Shape: [batch_size, 14, 14, 32]
    # Output Tensor Shape: [batch_size, 14, 14, 64]
    conv2 = tf.layers.conv2d(inputs=pool1, filters=64, kernel_size=[5, 5], padding="same", activation=tf.nn.relu)

    # Pooling Layer #2
    # Second max pooling layer with a 2x2 filter and stride of 2
    # Input Tensor Shape: [batch_size, 14, 14, 64]
    # Output Tensor Shape: [batch_size, 7, 7, 64]
    pool2 = tf.layers.max_pooling2d(inputs=conv2, pool_size=[2, 2], strides=2)

    # Flatten tensor into a batch of vectors
    # Input Tensor Shape: [batch_size, 7, 7, 64]
    # Output Tensor Shape: [batch_size, 7 * 7 * 64]
    pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * 64])

    # Dense Layer
    # Densely connected layer with 1024 neurons
    # Input Tensor Shape: [batch_size, 7 * 7 * 64]
    # Output Tensor Shape: [batch_size, 1024]
    dense = tf.layers.dense(inputs=pool2_flat, units=1024, activation=tf.nn.relu)

    # Add dropout operation; 0.6 probability that element will be kept
    dropout = tf.layers.dropout(inputs=dense, rate=0.4, training=is_training)

    # Logits layer
    # Input Tensor Shape: [batch_size, 1024]
    # Output Tensor Shape: [batch_size, 10]
    logits = tf.layers.dense(inputs=dropout, units=10)

    predictions = {
        # Generate predictions (for PredictSpec and EvaluationSpec)
        "classes": tf.argmax(input=logits, axis=1),
        # Add `softmax_tensor` to the graph. It is used for PredictSpec.
        "probabilities": tf.nn.softmax(logits, name="softmax_tensor"),
    }

    predict_spec = PredictSpec(output=predictions)

    # Calculate Loss (for both TrainSpec and EvaluationSpec)
    loss = tf.losses.softmax_cross_entropy(onehot_labels=tf.one_hot(features["labels"], depth=10), logits=logits)

    # Configure the Training Op (for TrainSpec)
    optimizer = tf.train.GradientDescentOptimizer(learning_rate=0.001)
    train_op = optimizer.minimize(loss=loss, global_step=tf.train.get_global_step())

    train_spec = TrainSpec(loss=loss, train_op=train_op)

    # Add evaluation metrics (for EvaluationSpec)
    eval_metric_ops = {"accuracy": tf.metrics.accuracy(labels=features["labels"], predictions=predictions["classes"])}

    eval_spec = EvaluationSpec(loss=loss, eval_metric_ops=eval_metric_ops)

    return train_spec, eval_spec, predict_spec


PARAMS = {"img_height": 28, "img_width": 28, "batch_size": 56, "epochs": 5}
