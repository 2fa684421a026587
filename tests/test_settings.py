"""Each option is declared once (``settings.Settings``: default, check, doc); the public signatures
spell them out for IDEs and readers, and are held against the declarations here."""

from __future__ import annotations

import inspect
import sys

import pytest

from elistimator_tracking import Elistimator, KeepBest, MissingDependencyError
from elistimator_tracking.estimator import Estimator
from elistimator_tracking.settings import Settings

#: the options each signature takes (the rest does not apply there)
SIGNATURES = {
    Elistimator.__init__: set(Settings.defaults()) - {"cache_dir", "trust_store"},
    Elistimator.from_disk: set(Settings.defaults()) - {"distribute"},
    Estimator.__init__: {"tracking", "experiment", "run_name", "tags", "verbose"},
}
#: where a signature's default differs from the declared one, on purpose
OWN_DEFAULTS = {(Estimator.__init__, "verbose"): False}  # tf.estimator draws no progress bars


@pytest.mark.parametrize("function", list(SIGNATURES), ids=lambda f: f.__qualname__)
def test_each_public_signature_takes_the_declared_options_with_their_defaults(function):
    parameters = inspect.signature(function).parameters
    declared = Settings.defaults()
    taken = {name for name in parameters if name in declared}
    assert taken == SIGNATURES[function]
    for name in taken:
        expected = OWN_DEFAULTS.get((function, name), declared[name])
        assert parameters[name].default == expected, f"{function.__qualname__}({name}=...)"
        if name != "session_args":
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_every_option_is_documented_where_it_is_declared_and_named_in_the_facade():
    docs = Settings.docs()
    assert all(len(doc) > 20 for doc in docs.values()), docs
    facade = inspect.getdoc(Elistimator)
    for name in SIGNATURES[Elistimator.__init__]:
        assert name in facade, f"Elistimator's docstring does not name the option {name}"


@pytest.mark.parametrize(
    "option, value, error, message",
    [
        ("summary_every_n_steps", 0, ValueError, "summary_every_n_steps must be a positive int, got 0"),
        ("experiment", "  ", ValueError, "experiment must be a non-empty string or None"),
        ("tags", {"a": 1}, TypeError, "tags must be a dict of str to str"),
        ("tracking", 3, TypeError, "tracking must be True, False, a tracking URI string or a Tracker object"),
        ("system_metrics", "yes", TypeError, "system_metrics must be True or False"),
        ("listeners", [object()], TypeError, "listeners must be a list of elistimator_tracking.Listener objects"),
        ("store_retention", 2, TypeError, r"store_retention must be None .* or KeepBest\(k, metric, mode\)"),
        ("cache_dir", 3, TypeError, "cache_dir must be a str or pathlib.Path"),
        ("session_args", {"graph": 1}, TypeError, r"session_args has unknown key\(s\) \['graph'\]"),
    ],
)
def test_each_option_is_checked_once_naming_it_and_what_it_expects(option, value, error, message):
    with pytest.raises(error, match=message):
        Settings.checked(**{option: value})


def test_system_metrics_without_psutil_names_the_extra_that_brings_it(monkeypatch):
    """psutil is the system-metrics extra, not a dependency: without it the option says what to install."""
    monkeypatch.setitem(sys.modules, "psutil", None)  # what Python's import system reads as "not installed"
    with pytest.raises(MissingDependencyError, match=r"pip install 'elistimator_tracking\[system-metrics\]'"):
        Settings.checked(system_metrics=True)
    assert Settings.checked(system_metrics=False).system_metrics is False


def test_an_unknown_option_is_refused_naming_the_known_ones():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['verbosity'\]; the options are \["):
        Settings.checked(verbosity=True)


def test_options_reach_the_settings_as_given(tmp_path):
    retention = KeepBest(2, "accuracy")
    settings = Settings.checked(**Settings.given({"tags": {"a": "b"}, "store_retention": retention, "model_fn": 1}))
    assert settings.tags == {"a": "b"} and settings.store_retention is retention and settings.listeners == ()


def test_the_model_origin_is_no_public_way_in():
    with pytest.raises(TypeError, match="model_fn must be callable"):
        Elistimator(object())
