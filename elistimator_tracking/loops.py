"""The training, evaluation and prediction loops over one model graph and its session.

The loops feed numpy batches from input streams (``inputs.py``) to the model graph's
placeholders and tell listeners what happened; they know nothing of checkpoints,
metadata or tracking.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._tf import new_session, tf
from .inputs import Batch, BatchStream, InputFn, InputSignature, batch_size, one_off_batch
from .listeners import Listeners
from .model_graph import ModelFn, ModelGraph
from .progress import progress_bar
from .settings import Settings


def _builds(model_fn: ModelFn, params: Mapping[str, Any], signature: InputSignature,
            saver_args: Mapping[str, Any]) -> bool:
    """Whether ``model_fn`` builds a graph for ``signature`` (a throwaway graph)."""
    try:
        ModelGraph.build(model_fn, params, signature, saver_args)
    except Exception:  # noqa: BLE001 -- only whether it builds matters here
        return False
    return True


class Loops:
    """Train / evaluate / predict with ``model`` in its own session."""

    def __init__(self, model: ModelGraph, settings: Settings):
        self.model = model
        self.session = new_session(model.graph, **settings.session_args)
        self.session.run(model.init)
        self.summary_every_n_steps = settings.summary_every_n_steps
        self.train_stream: Optional[BatchStream] = None
        self.validation_stream: Optional[BatchStream] = None
        self._epoch_position = 0  # batches of the current training epoch consumed
        self._lengths: Dict[str, int] = {}  # batches per epoch, once a pass has shown it
        self._train_calls = 0
        self._batch_size_told = False

    @classmethod
    def built(cls, model_fn: ModelFn, params: Mapping[str, Any], train: BatchStream,
              validation: Optional[BatchStream], saver_args: Mapping[str, Any], settings: Settings) -> "Loops":
        """Loops over a graph ``model_fn`` builds for the signature of the training (and validation) data.

        Shapes that differ between the two become unknown dimensions (e.g. sequence lengths);
        when ``model_fn`` cannot be built for both but can for the training data alone, the
        error names the features and both shapes rather than the model's own complaint.
        """
        signature = train.signature
        if validation is None:
            return cls(ModelGraph.build(model_fn, params, signature, saver_args), settings)
        relaxed = signature.relaxed_with(validation.signature, "validation")
        try:
            return cls(ModelGraph.build(model_fn, params, relaxed, saver_args), settings)
        except Exception as error:  # noqa: BLE001 -- re-raised unless the shapes are to blame
            differing = [f"feature {f.key!r}: training {f.shape_text()}, validation "
                         f"{validation.signature[f.key].shape_text()}" for f in signature
                         if f.key in validation.signature and f.shape != validation.signature[f.key].shape]
            if not differing or not _builds(model_fn, params, signature, saver_args):
                raise
            raise ValueError(f"the validation dataset does not have the training dataset's shapes ("
                             f"{'; '.join(differing)}), and model_fn cannot be built for both "
                             f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                             "give the validation data the training data's shapes") from error

    @property
    def global_step(self) -> int:
        return int(self.session.run(self.model.global_step))

    # -- data -------------------------------------------------------------------------

    def check_streams(self, train: BatchStream, validation: Optional[BatchStream]) -> None:
        """Raise unless ``train`` (and ``validation``) can feed this model."""
        self.require_fits(train, self.model.train_needs())
        if validation is not None:
            if self.model.evaluation is None:
                raise ValueError("setup got a validation_input_fn, but model_fn returned no EvaluationSpec "
                                 "to validate with")
            self.require_fits(validation, self.model.evaluation_needs())

    def require_fits(self, stream: BatchStream, needed) -> None:
        signature: InputSignature = self.model.signature
        signature.require_fits(stream.signature, stream.role)
        missing = [key for key in needed if key not in stream.signature]
        if missing:
            raise ValueError(f"the {stream.role} dataset lacks feature(s) {', '.join(map(repr, missing))} that "
                             f"the model needs for {stream.role}; the signature is {signature.describe()}")

    def use_streams(self, train: BatchStream, validation: Optional[BatchStream]) -> None:
        """Train (and validate) on these streams from now on; a new epoch starts."""
        for old in (self.train_stream, self.validation_stream):
            if old is not None:
                old.close()
        self.train_stream, self.validation_stream = train, validation
        self._epoch_position = 0
        self._lengths.clear()

    # -- training -----------------------------------------------------------------------

    def train(self, steps: Optional[int], verbose: bool, listeners: Listeners) -> None:
        """``steps`` steps, or to the end of the current epoch; a new epoch starts when the data runs out."""
        self._train_calls += 1
        done, step = 0, self.global_step
        with progress_bar(f"Training ({self._train_calls})", self._train_total(steps), verbose) as bar:
            while steps is None or done < steps:
                batch = self.train_stream.next_batch()
                if batch is None:
                    self._start_new_epoch()
                    if steps is None and done:
                        break
                    continue
                self._epoch_position += 1  # consumed, even if the step below raises
                if not self._batch_size_told:
                    self._batch_size_told = True
                    listeners.notify("on_params", {"batch_size": batch_size(batch)})
                step, loss = self._train_step(batch, step + 1, done, listeners)
                done += 1
                bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
                bar.update()
        listeners.notify("on_train_end", step)

    def _train_total(self, steps: Optional[int]) -> Optional[int]:
        if steps is not None:
            return steps
        length = self._lengths.get("training")
        if length is None:
            return None
        return (length - self._epoch_position) or length

    def _start_new_epoch(self) -> None:
        if self._epoch_position == 0:
            raise ValueError("the training input function yielded no batches")
        self._lengths["training"] = self._epoch_position
        self._epoch_position = 0
        self.train_stream.restart()

    def _train_step(self, batch: Batch, expected_step: int, done: int, listeners: Listeners) -> Tuple[int, float]:
        """One step; ``expected_step`` (the global step it should reach) decides whether the
        model's own summaries are fetched with it. Returns the global step reached and the loss."""
        model = self.model
        fetches = [model.train_step, model.train.loss]
        summaries = model.user_summaries is not None and expected_step % self.summary_every_n_steps == 0
        if summaries:
            fetches.append(model.user_summaries)
        values = self.session.run(fetches, feed_dict=model.feed(batch, training=True))
        step, loss = int(values[0]), float(values[1])
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss} at global step {step} "
                                     f"(step {done + 1} of this train() call)")
        if step % self.summary_every_n_steps == 0:
            listeners.notify("on_train_summary", step, {"loss": loss}, values[2] if summaries else None)
        return step, loss

    # -- evaluation ---------------------------------------------------------------------

    def validate(self, verbose: bool) -> Dict[str, float]:
        if self.validation_stream is None:
            raise RuntimeError("validate() needs a validation_input_fn: pass one to setup(...)")
        return self.evaluate(self.validation_stream, "Validation", verbose)

    def evaluate_input(self, input_fn: InputFn, verbose: bool,
                       evaluated: Optional[Callable[[BatchStream], None]] = None) -> Dict[str, float]:
        """One pass over a fresh input function's data (its stream closed afterwards; ``evaluated``
        is told of it after the pass)."""
        if self.model.evaluation is None:
            raise RuntimeError("evaluate() needs an EvaluationSpec, but model_fn returned None for it")
        stream = BatchStream(input_fn, "evaluation")
        try:
            self.require_fits(stream, self.model.evaluation_needs())
            metrics = self.evaluate(stream, "Evaluation", verbose)
            if evaluated is not None:
                evaluated(stream)
            return metrics
        finally:
            stream.close()

    def evaluate(self, stream: BatchStream, description: str, verbose: bool) -> Dict[str, float]:
        """One fresh pass over ``stream``: ``{metric: value, ..., 'loss': mean loss per example}``."""
        model = self.model
        spec = model.evaluation
        self.session.run(model.reset_metrics)
        updates = [update for _, update in spec.metric_ops.values()]
        loss_sum, examples, batches = 0.0, 0, 0
        with progress_bar(description, self._lengths.get(stream.role), verbose) as bar:
            for batch in stream.epoch():
                loss, _ = self.session.run([spec.loss, updates], feed_dict=model.feed(batch))
                size = batch_size(batch)
                loss_sum += float(loss) * size
                examples += size
                batches += 1
                bar.update()
        if stream is self.validation_stream:
            self._lengths[stream.role] = batches
        if examples == 0:
            raise ValueError(f"the {stream.role} input function yielded no batches")
        values = self.session.run({name: value for name, (value, _) in spec.metric_ops.items()})
        metrics = {name: float(np.asarray(value).reshape(())) for name, value in values.items()}
        metrics["loss"] = loss_sum / examples
        return metrics

    # -- prediction ---------------------------------------------------------------------

    def predict(self, inputs: Sequence[Any], features: Mapping[str, Any], input_fn: Optional[InputFn],
                verbose: bool) -> Union[Dict[str, np.ndarray], Iterator[Dict[str, np.ndarray]]]:
        """``Elistimator.predict``: batches of ``input_fn``, or one batch of arrays."""
        model = self.model
        if model.predict is None:
            raise RuntimeError("predict() needs a PredictSpec, but model_fn returned None for it")
        if input_fn is not None:
            if inputs or features:
                raise ValueError("predict takes either input_fn=... or one-off inputs such as "
                                 "predict(images=x), not both")
            stream = BatchStream(input_fn, "prediction")
            try:
                self.require_fits(stream, model.predict_needs())
            except BaseException:
                stream.close()
                raise
            return self._predict_batches(stream, verbose)
        if not inputs and not features:
            raise ValueError("predict needs input_fn=... or one-off inputs such as predict(images=x); "
                             f"the signature is {model.signature.describe()}")
        if any(callable(value) for value in inputs):
            raise TypeError("pass an input function as predict(input_fn=fn), not positionally")
        return self._predict_batch(one_off_batch(model.signature, model.predict_needs(), inputs, features))

    def _predict_batches(self, stream: BatchStream, verbose: bool) -> Iterator[Dict[str, np.ndarray]]:
        """One ``{output: array}`` dict per batch of ``stream`` (closed at the end)."""
        try:
            with progress_bar("Prediction", None, verbose) as bar:
                for batch in stream.epoch():
                    yield self._predict_batch(batch)
                    bar.update()
        finally:
            stream.close()

    def _predict_batch(self, batch: Batch) -> Dict[str, np.ndarray]:
        return self.session.run(self.model.predict.output, feed_dict=self.model.feed(batch))

    def restore(self, prefix: str) -> int:
        """Restore the variables from the checkpoint at ``prefix``; return its global step."""
        try:
            self.model.saver.restore(self.session, prefix)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(f"checkpoint {prefix!r} does not fit this model: "
                             f"{error.message.splitlines()[0]}") from None
        return self.global_step

    def close(self) -> None:
        for resource in (self.train_stream, self.validation_stream, self.session):
            if resource is not None:
                resource.close()
