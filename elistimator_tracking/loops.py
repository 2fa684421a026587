"""The training, evaluation and prediction loops over one model graph and its session.

The loops run steps on input streams (``streams.py``: in-graph iterators, or fed numpy
batches) and tell listeners what happened; they know nothing of checkpoints, metadata
or tracking.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np

from ._tf import new_session, tf
from .distribute import reads_in_graph, session_args
from .errors import DivergedError, InvalidTypeError, InvalidValueError, UsageError
from .inputs import InputData, InputFn, InputSignature, one_off_batch, unbatched_features
from .listeners import Listeners
from .model_graph import ModelFn, ModelGraph
from .progress import progress_bar
from .settings import Settings
from .streams import InputSlots, Stream, open_stream
from .watch import StepWatch, WatchedStep


def _unbatched(train: InputData, validation: InputData | None, error: Exception) -> InvalidValueError | None:
    """The error to raise when ``model_fn`` failed on data whose shapes show single elements (an input
    function without ``.batch()``), naming the dataset and the features; None when they look batched."""
    for data, other in ((train, validation), (validation, train)):
        if data is None:
            continue
        found = unbatched_features(data.signature, other.signature if other is not None else None)
        if found:
            return InvalidValueError(
                f"the {data.role} dataset yields unbatched elements ({'; '.join(found)}); model_fn is given "
                f"batches: end the {data.role} input function with .batch(batch_size) "
                f"(model_fn failed on them: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            )
    return None


def _builds(
    model_fn: ModelFn, params: dict[str, Any], signature: InputSignature, saver_args: Mapping[str, Any]
) -> bool:
    """Whether ``model_fn`` builds a graph for ``signature`` (a throwaway graph, on one device)."""
    try:
        ModelGraph.build(model_fn, params, signature, saver_args)
    except Exception:  # noqa: BLE001 -- only whether it builds matters here
        return False
    return True


class Loops:
    """Train / evaluate / predict with ``model`` in its own session."""

    def __init__(self, model: ModelGraph, settings: Settings, restoring: bool = False):
        """``restoring``: a checkpoint of every global variable is restored next, so only the local
        (metric) variables are initialized (random initial weights would be overwritten at once)."""
        self.model = model
        self.session = new_session(model.graph, **session_args(model.strategy, settings.session_args))
        self.session.run(model.local_init if restoring and model.local_init is not None else model.init)
        self.summary_every_n_steps = settings.summary_every_n_steps
        self._slots = (
            InputSlots(model.input, self.session)
            if model.input is not None and reads_in_graph(model.strategy)
            else None
        )
        self._training = {model.is_training: True}
        self.train_stream: Stream | None = None
        self.validation_stream: Stream | None = None
        self._epoch_position = 0  # batches of the current training epoch consumed
        self._lengths: dict[str, int] = {}  # batches per epoch, once a pass has shown it
        self._train_calls = 0
        self._batch_size_told = False

    @classmethod
    def built(
        cls,
        model_fn: ModelFn,
        params: dict[str, Any],
        train: InputData,
        validation: InputData | None,
        saver_args: Mapping[str, Any],
        settings: Settings,
    ) -> Loops:
        """Loops over a graph ``model_fn`` builds for the signature of the training (and validation) data.

        Shapes that differ between the two become unknown dimensions (e.g. sequence lengths);
        when ``model_fn`` cannot be built for both but can for the training data alone, the
        error names the features and both shapes rather than the model's own complaint.
        """
        signature, strategy = train.signature, settings.distribute
        relaxed = signature if validation is None else signature.relaxed_with(validation.signature, "validation")
        try:
            return cls(ModelGraph.build(model_fn, params, relaxed, saver_args, strategy), settings)
        except Exception as error:  # noqa: BLE001 -- re-raised unless the data is to blame
            unbatched = _unbatched(train, validation, error)
            if unbatched is not None:
                raise unbatched from error
            if validation is None:
                raise
            differing = [
                f"feature {f.key!r}: training {f.shape_text()}, validation {validation.signature[f.key].shape_text()}"
                for f in signature
                if f.key in validation.signature and f.shape != validation.signature[f.key].shape
            ]
            if not differing or not _builds(model_fn, params, signature, saver_args):
                raise
            raise InvalidValueError(
                f"the validation dataset does not have the training dataset's shapes ("
                f"{'; '.join(differing)}), and model_fn cannot be built for both "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "give the validation data the training data's shapes"
            ) from error

    @property
    def global_step(self) -> int:
        return int(self.session.run(self.model.global_step))

    # -- data -------------------------------------------------------------------------

    @property
    def validation_metrics(self) -> tuple[str, ...]:
        """The names ``validate()`` returns: ``loss`` and the EvaluationSpec's metrics (none without one)."""
        evaluation = self.model.evaluation
        return ("loss", *evaluation.metric_ops) if evaluation is not None else ()

    def check_data(self, train: InputData, validation: InputData | None) -> None:
        """Raise unless ``train`` (and ``validation``) can feed this model."""
        self.require_fits(train, self.model.train_needs())
        if validation is not None:
            if self.model.evaluation is None:
                raise InvalidValueError(
                    "setup got a validation_input_fn, but model_fn returned no EvaluationSpec to validate with"
                )
            self.require_fits(validation, self.model.evaluation_needs())

    def require_fits(self, data: InputData, needed) -> None:
        signature = self.model.signature
        signature.require_fits(data.signature, data.role)
        missing = [key for key in needed if key not in data.signature]
        if missing:
            raise InvalidValueError(
                f"the {data.role} dataset lacks feature(s) {', '.join(map(repr, missing))} that "
                f"the model needs for {data.role}; the signature is {signature.describe()}"
            )

    def use_data(self, train: InputData, validation: InputData | None) -> None:
        """Train (and validate) on this data from now on; a new epoch starts."""
        for old in (self.train_stream, self.validation_stream):
            if old is not None:
                old.close()
        self.train_stream = self.validation_stream = None
        self._epoch_position = 0
        self._lengths.clear()
        self.train_stream = self._open(train, "training")
        self.validation_stream = self._open(validation, "validation") if validation is not None else None
        self.train_stream.restart()

    @property
    def _training_data(self) -> Stream:
        """The training stream (the Elistimator trains only once setup gave it data)."""
        assert self.train_stream is not None, "use_data comes before training"
        return self.train_stream

    def restart_training(self) -> None:
        """Begin the training data anew, from its first batch (without reading its input function again)."""
        self._epoch_position = 0
        self._training_data.restart()

    def _open(self, data: InputData, slot: str) -> Stream:
        return open_stream(data, slot, self._slots, self.session, self.model.inputs, self.model.signature)

    # -- training -----------------------------------------------------------------------

    def train(self, steps: int | None, verbose: bool, listeners: Listeners, watch: StepWatch | None = None) -> None:
        """``steps`` steps, or to the end of the current epoch; a new epoch starts when the data runs out.
        ``watch`` sees every step and may end training early."""
        self._train_calls += 1
        done, step = 0, self.global_step
        with progress_bar(f"Training ({self._train_calls})", self._train_total(steps), verbose) as bar:
            while steps is None or done < steps:
                this = WatchedStep(self._train_fetches(step + 1), self._training, watch)
                try:
                    result = self._training_data.run(this.fetches, this.feed, sized=not self._batch_size_told)
                except BaseException:
                    self._epoch_position += 1  # the batch was read, even though the step failed
                    raise
                if result is None:
                    self._start_new_epoch()
                    if steps is None and done:
                        break
                    continue
                self._epoch_position += 1
                fetched, size = result
                values = this.own(fetched)
                if not self._batch_size_told:
                    self._batch_size_told = True
                    listeners.on_params({"batch_size": size})
                step, loss = self._after_step(values, done, listeners)
                done += 1
                if verbose:
                    bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
                    bar.update()
                if this.finished(fetched) or listeners.stop is not None:  # after the listeners heard of the step
                    break
        listeners.on_train_end(step)

    def _train_total(self, steps: int | None) -> int | None:
        if steps is not None:
            return steps
        length = self._lengths.get("training")
        if length is None:
            return None
        return (length - self._epoch_position) or length

    def _start_new_epoch(self) -> None:
        if self._epoch_position == 0:
            raise InvalidValueError("the training input function yielded no batches")
        self._lengths["training"] = self._epoch_position
        self._epoch_position = 0
        self._training_data.restart()

    def _train_fetches(self, expected_step: int) -> list:
        """The step, its loss, and the model's own summaries when ``expected_step`` (the global step
        the step should reach) is due for them."""
        model = self.model
        fetches = [model.train_step, model.train.loss]
        if model.user_summaries is not None and expected_step % self.summary_every_n_steps == 0:
            fetches.append(model.user_summaries)
        return fetches

    def _after_step(self, values: Sequence[Any], done: int, listeners: Listeners) -> tuple[int, float]:
        """Check the loss and tell listeners; return the global step reached and the loss."""
        step, loss = int(values[0]), float(values[1])
        if not math.isfinite(loss):
            raise DivergedError(f"training loss is {loss} at global step {step} (step {done + 1} of this train() call)")
        if step % self.summary_every_n_steps == 0:
            listeners.on_train_summary(step, {"loss": loss}, values[2] if len(values) > 2 else None)
        return step, loss

    # -- evaluation ---------------------------------------------------------------------

    def validate(self, verbose: bool, watch: StepWatch | None = None) -> dict[str, float]:
        if self.validation_stream is None:
            raise UsageError("validate() needs a validation_input_fn: pass one to setup(...)")
        return self.evaluate(self.validation_stream, "Validation", verbose, watch)

    def evaluate_input(
        self,
        input_fn: InputFn,
        verbose: bool,
        watch: StepWatch | None = None,
        evaluated: Callable[[InputData], None] | None = None,
    ) -> dict[str, float]:
        """One pass over a fresh input function's data (its stream closed afterwards; ``evaluated``
        is told of the data after the pass)."""
        self.model.evaluation_spec()
        data = InputData(input_fn, "evaluation")
        self.require_fits(data, self.model.evaluation_needs())
        stream = self._open(data, "evaluation")
        try:
            metrics = self.evaluate(stream, "Evaluation", verbose, watch)
            if evaluated is not None:
                evaluated(data)
            return metrics
        finally:
            stream.close()

    def evaluate(
        self, stream: Stream, description: str, verbose: bool, watch: StepWatch | None = None
    ) -> dict[str, float]:
        """One fresh pass over ``stream`` (until ``watch`` ends it): ``{metric: value, ..., 'loss': mean loss
        per example}``."""
        model = self.model
        spec = model.evaluation_spec()
        self.session.run(model.reset_metrics)
        fetches = [spec.loss, [update for _, update in spec.metric_ops.values()]]
        loss_sum, examples, batches = 0.0, 0, 0
        stream.restart()
        with progress_bar(description, self._lengths.get(stream.role), verbose) as bar:
            while (
                result := stream.run((this := WatchedStep(fetches, {}, watch)).fetches, this.feed, sized=True)
            ) is not None:
                values, size = result[0], cast(int, result[1])  # sized=True: the batch's size
                loss, _ = this.own(values)
                loss_sum += float(loss) * size
                examples += size
                batches += 1
                bar.update()
                if this.finished(values):
                    break
        if stream is self.validation_stream:
            self._lengths[stream.role] = batches
        if examples == 0:
            raise InvalidValueError(f"the {stream.role} input function yielded no batches")
        values = self.session.run({name: value for name, (value, _) in spec.metric_ops.items()})
        metrics = {name: float(np.asarray(value).reshape(())) for name, value in values.items()}
        metrics["loss"] = loss_sum / examples
        return metrics

    # -- prediction ---------------------------------------------------------------------

    def predict(
        self,
        inputs: Sequence[Any],
        features: Mapping[str, Any],
        input_fn: InputFn | None,
        verbose: bool,
        watch: StepWatch | None = None,
    ) -> dict[str, np.ndarray] | Iterator[dict[str, np.ndarray]]:
        """``Elistimator.predict``: batches of ``input_fn``, or one batch of arrays."""
        model = self.model
        output = model.predict_spec().output
        if input_fn is not None:
            if inputs or features:
                raise InvalidValueError(
                    "predict takes either input_fn=... or one-off inputs such as predict(images=x), not both"
                )
            data = InputData(input_fn, "prediction")
            self.require_fits(data, model.predict_needs())
            return self._predict_batches(self._open(data, "prediction"), verbose, watch)
        if not inputs and not features:
            raise InvalidValueError(
                "predict needs input_fn=... or one-off inputs such as predict(images=x); "
                f"the signature is {model.signature.describe()}"
            )
        if any(callable(value) for value in inputs):
            raise InvalidTypeError("pass an input function as predict(input_fn=fn), not positionally")
        batch = one_off_batch(model.signature, model.predict_needs(), inputs, features)
        return self.session.run(output, {model.inputs[key]: value for key, value in batch.items()})

    def _predict_batches(
        self, stream: Stream, verbose: bool, watch: StepWatch | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """One ``{output: array}`` dict per batch of ``stream`` (closed at the end, or when ``watch`` ends it)."""
        output = self.model.predict_spec().output
        try:
            stream.restart()
            with progress_bar("Prediction", None, verbose) as bar:
                while (result := stream.run((this := WatchedStep(output, {}, watch)).fetches, this.feed)) is not None:
                    outputs, stop = this.own(result[0]), this.finished(result[0])
                    yield outputs
                    bar.update()
                    if stop:
                        break
        finally:
            stream.close()

    def restore(self, prefix: str) -> int:
        """Restore the variables from the checkpoint at ``prefix``; return its global step."""
        try:
            self.model.saver.restore(self.session, prefix)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
            raise InvalidValueError(
                f"checkpoint {prefix!r} does not fit this model: {error.message.splitlines()[0]}"
            ) from None
        return self.global_step

    def close(self) -> None:
        for resource in (self.train_stream, self.validation_stream, self.session):
            if resource is not None:
                resource.close()


def set_up(
    loops: Loops | None,
    model_fn: ModelFn | None,
    params: dict[str, Any],
    train: InputData,
    validation: InputData | None,
    saver_args: Mapping[str, Any],
    previous_saver_args: Mapping[str, Any],
    settings: Settings,
) -> Loops:
    """``setup()``'s loops: built by ``model_fn`` on the first call (nothing half-built stays behind
    when that fails), then checked against the data, given the saver settings, and fed the data."""
    built_now = loops is None
    try:
        if loops is None:
            assert model_fn is not None, "a model without a graph yet is a new one: it has its model_fn"
            loops = Loops.built(model_fn, params, train, validation, saver_args, settings)
        loops.check_data(train, validation)
        if not built_now and saver_args != previous_saver_args:
            loops.model.replace_saver(saver_args)
        loops.use_data(train, validation)
    except BaseException:
        if built_now and loops is not None:
            loops.close()
        raise
    return loops
