"""Model functions that use much of what TF1 models are built from, for the op allow-list's test
(``graph_safety.ALLOWED_OPS`` was measured on them and on the suite's own checkpoints).

``conv_model_fn``: tf.layers convolutions (1-D, 2-D, 3-D, transposed, separable, depthwise), batch
norm, pooling, dropout, resizing, every tf.losses loss, every tf.metrics metric, learning-rate
decays, clipping, a moving average and summaries. ``sequence_model_fn``: embeddings, LSTM and GRU
cells in dynamic, bidirectional and static RNNs, string hashing, while loops and ``map_fn``.
``math_model_fn``: initializers, activations, elementwise and reduction math, linear algebra,
gathers, tf.image, random ops, ``tf.print`` to the log and assertions. ``params['optimizer']`` is a
v1 optimizer class (or a function of the learning rate).
"""

from __future__ import annotations

import numpy as np

from elistimator_tracking import EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf

EXAMPLES = 16


def images_input_fn():
    rng = np.random.default_rng(0)
    data = {
        "x": rng.normal(size=(EXAMPLES, 8, 8, 1)).astype(np.float32),
        "y": rng.integers(0, 3, EXAMPLES).astype(np.int32),
        "img": rng.uniform(size=(EXAMPLES, 8, 8, 3)).astype(np.float32),
    }
    return tf.data.Dataset.from_tensor_slices(data).batch(4)


def sequences_input_fn():
    rng = np.random.default_rng(0)
    data = {
        "tokens": rng.integers(0, 20, (EXAMPLES, 6)).astype(np.int64),
        "length": rng.integers(1, 7, EXAMPLES).astype(np.int32),
        "y": rng.integers(0, 3, EXAMPLES).astype(np.int32),
        "words": np.array(["a b", "c"] * (EXAMPLES // 2)),
    }
    return tf.data.Dataset.from_tensor_slices(data).batch(4)


def grouped(metric):
    """A tf.metrics pair whose update op is a resource variable's assignment, as an op."""
    return metric[0], tf.group(metric[1])


def all_metrics(labels, logits):
    probs, classes = tf.nn.softmax(logits), tf.argmax(logits, 1, output_type=tf.int32)
    onehot, positive, predicted = tf.one_hot(labels, 3), tf.equal(labels, 1), tf.equal(classes, 1)
    wide = tf.cast(labels[:, None], tf.int64)
    metrics = {
        "accuracy": tf.metrics.accuracy(labels, classes),
        "precision": tf.metrics.precision(positive, predicted),
        "recall": tf.metrics.recall(positive, predicted),
        "auc": tf.metrics.auc(onehot, probs),
        "auc_pr": tf.metrics.auc(onehot, probs, curve="PR", summation_method="careful_interpolation"),
        "mean": tf.metrics.mean(probs[:, 0]),
        "mse": tf.metrics.mean_squared_error(onehot, probs),
        "mae": tf.metrics.mean_absolute_error(onehot, probs),
        "rmse": tf.metrics.root_mean_squared_error(onehot, probs),
        "iou": tf.metrics.mean_iou(labels, classes, 3),
        "per_class": tf.metrics.mean_per_class_accuracy(labels, classes, 3),
        "tp": tf.metrics.true_positives(positive, predicted),
        "fn": tf.metrics.false_negatives(positive, predicted),
        "fp": tf.metrics.false_positives(positive, predicted),
        "tn": tf.metrics.true_negatives(positive, predicted),
        "precision_at_k": tf.metrics.precision_at_k(wide, logits, 2),
        "recall_at_k": tf.metrics.recall_at_k(wide, logits, 2),
        "sensitivity": tf.metrics.sensitivity_at_specificity(positive, probs[:, 1], 0.5),
        "specificity": tf.metrics.specificity_at_sensitivity(positive, probs[:, 1], 0.5),
        "cosine": tf.metrics.mean_cosine_distance(onehot, probs, 1),
        "below": tf.metrics.percentage_below(probs[:, 0], 0.5),
        "relative": tf.metrics.mean_relative_error(onehot, probs, onehot + 1.0),
    }
    return {name: grouped(metric) for name, metric in metrics.items()}


def all_losses(labels, logits):
    onehot, wide = tf.one_hot(labels, 3), tf.cast(labels[:, None], tf.int64)
    projected = logits @ tf.ones([3, 5])
    sampled = [
        tf.get_variable(name, shape) for name, shape in (("sw", [3, 5]), ("sb", [3]), ("nw", [3, 5]), ("nb", [3]))
    ]
    return tf.add_n(
        [
            tf.losses.sparse_softmax_cross_entropy(labels, logits),
            tf.losses.softmax_cross_entropy(onehot, logits, label_smoothing=0.1),
            tf.losses.sigmoid_cross_entropy(onehot, logits),
            tf.losses.mean_squared_error(onehot, tf.nn.softmax(logits)),
            tf.losses.huber_loss(onehot, logits),
            tf.losses.hinge_loss(onehot, logits),
            tf.losses.log_loss(onehot, tf.nn.sigmoid(logits)),
            tf.losses.absolute_difference(onehot, logits),
            tf.losses.cosine_distance(tf.nn.l2_normalize(onehot, 1), tf.nn.l2_normalize(logits, 1), axis=1),
            tf.losses.mean_pairwise_squared_error(onehot, logits),
            tf.losses.get_regularization_loss(),
            tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(onehot, logits, 2.0)),
            tf.reduce_mean(tf.nn.sampled_softmax_loss(sampled[0], sampled[1], wide, projected, 2, 3)),
            tf.reduce_mean(tf.nn.nce_loss(sampled[2], sampled[3], wide, projected, 2, 3)),
        ]
    )


def specs(loss, logits, labels, params, metrics=None, clip=False):
    step = tf.train.get_global_step()
    rate = tf.train.exponential_decay(0.1, step, 10, 0.9) + tf.train.cosine_decay(0.01, step, 100)
    rate += tf.train.polynomial_decay(0.01, step, 100) + tf.train.piecewise_constant(step, [5], [0.0, 0.0])
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        variables = tf.trainable_variables()
        gradients = tf.gradients(loss, variables)
        if clip:
            gradients, _ = tf.clip_by_global_norm(gradients, 5.0)
        train_op = params["optimizer"](rate).apply_gradients(zip(gradients, variables, strict=True), global_step=step)
    with tf.control_dependencies([train_op]):
        train_op = tf.train.ExponentialMovingAverage(0.9).apply(variables[:2])
    classes = tf.argmax(logits, 1, output_type=tf.int32)
    metrics = metrics or {"accuracy": tf.metrics.accuracy(labels, classes)}
    outputs = {"classes": classes, "top": tf.nn.top_k(logits, 2).indices, "sorted": tf.sort(logits)}
    return TrainSpec(loss, train_op), EvaluationSpec(loss, metrics), PredictSpec(outputs)


def conv_model_fn(features, is_training, params):
    h = tf.layers.conv2d(features["x"], 4, 3, padding="same", activation=tf.nn.relu)
    h = tf.layers.batch_normalization(h, training=is_training)
    h = tf.layers.separable_conv2d(h, 4, 3, padding="same", activation=tf.nn.elu)
    h = tf.layers.conv2d_transpose(h, 4, 3, padding="same", activation=tf.nn.selu)
    h = tf.nn.depthwise_conv2d(h, tf.get_variable("depthwise", [3, 3, 4, 1]), [1, 1, 1, 1], "SAME")
    h = tf.layers.average_pooling2d(tf.layers.max_pooling2d(h, 2, 2), 2, 1, padding="same")
    h = tf.image.resize_nearest_neighbor(tf.image.resize_bilinear(tf.nn.lrn(h), [4, 4]), [4, 4])
    h3 = tf.layers.conv3d(h[..., None], 2, 2, padding="same")
    h1 = tf.layers.conv1d(tf.reshape(h, [-1, 16, 4]), 3, 2, padding="same", activation=tf.nn.leaky_relu)
    h1 = tf.layers.average_pooling1d(tf.layers.max_pooling1d(h1, 2, 2), 2, 1)
    flat = tf.concat([tf.layers.flatten(h), tf.layers.flatten(h3), tf.layers.flatten(h1)], 1)
    flat = tf.nn.dropout(tf.layers.dropout(flat, 0.3, training=is_training), rate=0.1)
    flat = tf.layers.dense(flat, 16, activation=tf.nn.softplus, kernel_regularizer=lambda w: 1e-4 * tf.nn.l2_loss(w))
    logits = tf.layers.dense(flat, 3)
    loss = all_losses(features["y"], logits)
    tf.summary.scalar("loss", loss)
    tf.summary.histogram("logits", logits)
    tf.summary.image("x", features["x"])
    return specs(loss, logits, features["y"], params, all_metrics(features["y"], logits), clip=True)


def sequence_model_fn(features, is_training, params):
    embedding = tf.get_variable("embedding", [20, 8])
    x = tf.nn.embedding_lookup(embedding, features["tokens"])
    bag = tf.nn.embedding_lookup_sparse(embedding, tf.sparse.from_dense(features["tokens"]), None, combiner="mean")
    cells = [tf.nn.rnn_cell.DropoutWrapper(c, output_keep_prob=0.9) for c in (tf.nn.rnn_cell.LSTMCell(8),)]
    cells.append(tf.nn.rnn_cell.GRUCell(8))
    length = features["length"]
    out, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.MultiRNNCell(cells), x, sequence_length=length, dtype=tf.float32)
    (forward, backward), _ = tf.nn.bidirectional_dynamic_rnn(
        tf.nn.rnn_cell.BasicLSTMCell(4), tf.nn.rnn_cell.BasicRNNCell(4), x, length, dtype=tf.float32, scope="bi"
    )
    peephole = tf.nn.rnn_cell.LSTMCell(4, use_peepholes=True, num_proj=3)
    static, _ = tf.nn.static_rnn(peephole, tf.unstack(x, axis=1), dtype=tf.float32, scope="static")
    mask = tf.sequence_mask(length, 6, dtype=tf.float32)
    pooled = tf.reduce_sum(out * mask[..., None], 1) / tf.reduce_sum(mask, 1, keepdims=True)
    hashed = tf.strings.to_hash_bucket_fast(tf.strings.split(features["words"]).values, 5)
    hashed_words = tf.strings.to_hash_bucket_strong(features["words"], 3, [1, 2])
    hashed_words += tf.strings.to_hash_bucket(features["words"], 3)
    segments = tf.math.segment_sum(tf.ones_like(hashed, tf.float32), tf.zeros_like(hashed, tf.int32))
    looped = tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 1.1), [0, tf.reduce_mean(pooled)])[1]
    mapped = tf.map_fn(tf.reduce_sum, pooled)
    stacked = tf.TensorArray(tf.float32, size=2).write(0, 1.0).write(1, 2.0).stack()
    extra = looped + tf.reduce_sum(mapped) + tf.reduce_sum(stacked) + tf.reduce_sum(segments)
    extra += tf.cast(tf.reduce_sum(hashed_words), tf.float32)
    feature = tf.concat([pooled, forward[:, -1], backward[:, 0], static[-1], bag], 1)
    logits = tf.layers.dense(feature, 3) + 0.0 * extra
    loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
    return specs(loss, logits, features["y"], params)


def math_model_fn(features, is_training, params):
    x = tf.layers.flatten(features["x"])[:, :6]
    initializers = [
        tf.truncated_normal_initializer(),
        tf.random_normal_initializer(),
        tf.orthogonal_initializer(),
        tf.glorot_normal_initializer(),
        tf.variance_scaling_initializer(),
    ]
    h = tf.add_n([tf.layers.dense(x, 6, kernel_initializer=init) for init in initializers])
    unary = [tf.nn.relu6, tf.nn.softsign, tf.sigmoid, tf.tanh, tf.math.erf, tf.math.sin, tf.math.cos, tf.math.atan]
    unary += [tf.floor, tf.math.ceil, tf.round, tf.abs, tf.sign, tf.exp, tf.math.expm1, tf.math.log1p, tf.square]
    h = tf.add_n([f(h) for f in unary]) + tf.clip_by_value(h, -1.0, 1.0) + tf.pow(tf.abs(h) + 1, 0.5)
    h += tf.sqrt(tf.abs(h)) + tf.math.rsqrt(tf.abs(h) + 1) + tf.maximum(h, 0.1) + tf.minimum(h, 0.9)
    h += tf.math.floormod(h, 2.0) + tf.math.floordiv(h, 2.0) + tf.math.squared_difference(h, x)
    h += tf.math.reciprocal(tf.abs(h) + 1)
    h = tf.where(tf.math.is_nan(h) | tf.logical_not(tf.math.is_finite(h)), tf.zeros_like(h), h)
    mean, variance = tf.nn.moments(h, [0])
    h = tf.nn.batch_normalization(h, mean, variance, None, None, 1e-3)
    h += tf.reduce_max(h, 1, keepdims=True) + tf.reduce_min(h, 1, keepdims=True) + tf.reduce_logsumexp(h, 1, True)
    h += tf.reduce_prod(tf.sigmoid(h), 1, keepdims=True) + tf.cumsum(h, 1) + tf.math.cumprod(tf.sigmoid(h), 1)
    h += tf.cast(tf.reduce_any(h > 0, 1, keepdims=True) & tf.reduce_all(h > -9, 1, keepdims=True), tf.float32)
    m = tf.matmul(h[:, :, None], h[:, None, :]) + tf.einsum("bi,bj->bij", h, h)
    m = tf.linalg.diag_part(tf.linalg.band_part(tf.transpose(m, [0, 2, 1]), 0, -1))
    g = tf.gather(h, [0, 1], axis=1) + tf.gather_nd(h, [[0, 1]]) + tf.pad(h, [[0, 0], [1, 1]])[:, 1:3]
    g += tf.tile(h[:, :1], [1, 2]) + tf.reverse(h, [1])[:, :2] + tf.split(m, 2, axis=1)[0][:, :2]
    image = features["img"]
    image = tf.image.per_image_standardization(image) + tf.image.adjust_brightness(image, 0.1)
    image += tf.image.rgb_to_grayscale(image) + tf.image.adjust_contrast(image, 1.1) + tf.image.rot90(image)
    image += tf.image.flip_up_down(image) + tf.image.rgb_to_hsv(tf.clip_by_value(image, 0.0, 1.0))
    image = tf.cond(
        is_training,
        lambda: (
            image + tf.random.uniform(tf.shape(image)) + tf.random.normal(tf.shape(image)) + tf.random.shuffle(image)
        ),
        lambda: image,
    )
    logits = tf.layers.dense(tf.concat([g, tf.layers.flatten(image)[:, :4], tf.nn.l2_normalize(h, 1)], 1), 3)
    loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
    loss += 0.0 * tf.cast(tf.reduce_sum(tf.random.categorical(logits, 1)), tf.float32)
    with tf.control_dependencies(
        [tf.debugging.assert_non_negative(loss), tf.print("loss", loss, output_stream=tf.logging.info)]
    ):
        loss = tf.debugging.check_numerics(tf.identity(loss), "loss")
    return specs(loss, logits, features["y"], params)
