"""The journal's line format on its own (``tracking/journal/ops.py``): the exact line each operation
writes, what a line may leave out, and the exact reason given for every line refused (the reason is
what the quarantine file and its warning show a user). No TensorFlow, no MLflow. Written to kill the
mutants mutmut left in ``ops.py`` (docs/testing.md)."""

import json

import pytest

from elistimator_tracking.tracking.journal import ops


def refused(line) -> str:
    with pytest.raises(ops.Undecodable) as caught:
        ops.decode(line if isinstance(line, str) else json.dumps(line))
    return str(caught.value)


def metrics_line(**changes):
    line = {"v": 2, "seq": 5, "run": "k", "op": "metrics", "metrics": {"a": 1.0}, "step": 3, "timestamp": 7}
    return {**line, **changes}


def test_an_operation_writes_one_compact_line_with_its_format_and_kind_first():
    op = ops.Metrics(seq=4, run="k", metrics={"loss": 0.5}, step=9, timestamp=11)
    assert op.encode() == (
        '{"v":2,"seq":4,"op":"metrics","run":"k","metrics":{"loss":0.5},"step":9,"timestamp":11,"model_key":null}'
    )
    clause = ops.Clause("checkpoint", 9, {"files": {"m.index": "ab"}})
    numbered = ops.LoggedModel(run="k", directory="d", step=9, key="x").numbered(12, clause)
    assert numbered.to_json() == {
        "v": 2,
        "seq": 12,
        "op": "logged_model",
        "run": "k",
        "directory": "d",
        "step": 9,
        "key": "x",
        "metadata_only": False,
        "commit": {"kind": "checkpoint", "step": 9, "files": {"m.index": "ab"}},
    }
    assert numbered.settled().to_json() == {k: v for k, v in numbered.to_json().items() if k != "commit"}
    assert numbered.kind == "logged_model" and numbered.settled().seq == 12


def test_a_line_may_leave_out_every_field_that_has_a_default_and_keeps_the_rest():
    start = ops.decode('{"seq": 3, "run": "k", "op": "start", "experiment": "e", "run_id": "r1"}')
    assert start == ops.Start(seq=3, run="k", experiment="e", run_name=None, tags={}, run_id="r1")
    model = ops.decode('{"seq": 4, "run": "k", "op": "logged_model", "directory": "d", "step": 2, "key": "x"}')
    assert model == ops.LoggedModel(seq=4, run="k", directory="d", step=2, key="x", metadata_only=False)
    finish = ops.decode('{"seq": 5, "run": "k", "op": "finish", "status": "KILLED", "commit": null}')
    assert finish == ops.Finish(seq=5, run="k", status="KILLED", error=None) and finish.commit is None


def test_numbers_are_kept_as_floats_and_booleans_are_not_numbers():
    op = ops.decode(json.dumps(metrics_line(metrics={"a": 2})))
    assert op.metrics == {"a": 2.0} and isinstance(op.metrics["a"], float)
    assert refused(metrics_line(metrics={"a": True})) == "its field 'metrics': expected a number, got True"
    assert refused(metrics_line(step=True)) == "its field 'step': expected an integer, got True"
    assert refused(metrics_line(step=2.0)) == "its field 'step': expected an integer, got 2.0"
    assert refused(metrics_line(seq=True)) == "it has no sequence number (True)"


@pytest.mark.parametrize(
    "line, why",
    [
        ("[1, 2]", "it is not a JSON object (list [1, 2])"),
        ('"text"', "it is not a JSON object ('text')"),
        (
            metrics_line(v=3),
            "it was written in journal format 3; this version reads formats 1 and 2 (a newer "
            "elistimator_tracking delivers it)",
        ),
        (
            metrics_line(v="2"),
            "it was written in journal format '2'; this version reads formats 1 and 2 (a newer "
            "elistimator_tracking delivers it)",
        ),
        (metrics_line(seq=-1), "it has no sequence number (-1)"),
        (metrics_line(seq="5"), "it has no sequence number ('5')"),
        (metrics_line(run=None), "it names no run (None)"),
        (metrics_line(run=7), "it names no run (7)"),
        (metrics_line(op="metrics_v2"), "its operation 'metrics_v2' is not one this version knows"),
        (metrics_line(op=["metrics"]), 'its operation list ["metrics"] is not one this version knows'),
        ({"seq": 1, "run": "k", "op": "tags"}, "its 'tags' operation lacks the field 'tags'"),
        ({"seq": 1, "run": "k", "op": "start"}, "its 'start' operation lacks the field 'experiment'"),
        (metrics_line(metrics=[1]), "its field 'metrics': expected an object of numbers, got list [1]"),
        (metrics_line(metrics={"a": "x"}), "its field 'metrics': expected a number, got 'x'"),
        ({"seq": 1, "run": "k", "op": "tags", "tags": "a"}, "its field 'tags': expected an object of strings, got 'a'"),
        ({"seq": 1, "run": "k", "op": "tags", "tags": {"a": 1}}, "its field 'tags': expected a string, got 1"),
        (
            {"seq": 1, "run": "k", "op": "start", "experiment": "e", "run_name": 5},
            "its field 'run_name': expected a string, got 5",
        ),
        (
            {"seq": 1, "run": "k", "op": "logged_model", "directory": "d", "step": 1, "key": "x", "metadata_only": 1},
            "its field 'metadata_only': expected true or false, got 1",
        ),
        ({**metrics_line(), "commit": 5}, "its commit clause is not an object (5)"),
        ({**metrics_line(), "commit": {"step": 1}}, "its commit clause has a kind this version does not know (None)"),
        (
            {**metrics_line(), "commit": {"kind": "validation", "step": "1", "metrics": {}}},
            "expected an integer, got '1'",
        ),
        (
            {**metrics_line(), "commit": {"kind": "checkpoint", "step": 1, "files": {"m": 2}}},
            "expected a string, got 2",
        ),
        (
            {**metrics_line(), "commit": {"kind": "branch", "step": 1, "dropped": {"x": {}}}},
            "its branch clause's 'dropped' is not an object by step (dict {\"x\": {}})",
        ),
        (
            {**metrics_line(), "commit": {"kind": "branch", "step": 1, "dropped": [1]}},
            "its branch clause's 'dropped' is not an object by step (list [1])",
        ),
    ],
)
def test_the_reason_a_line_is_refused_names_the_field_and_the_value(line, why):
    assert refused(line) == why


def test_a_clause_of_each_kind_reads_back_as_written():
    for clause in (
        ops.Clause("checkpoint", 3, {"files": {"m.index": "ab"}}),
        ops.Clause("validation", 3, {"metrics": {"loss": 0.25}}),
        ops.Clause("branch", 3, {"dropped": {"5": {"loss": 0.5}, "7": {}}}),
    ):
        assert ops.Clause.decode(clause.to_json()) == clause
    assert ops.Clause.decode({"kind": "branch", "step": 2, "dropped": {}}).data == {"dropped": {}}


def test_a_value_is_shown_short_and_with_its_type_when_it_is_not_a_scalar():
    assert refused(metrics_line(step="x" * 38)) == f"its field 'step': expected an integer, got '{'x' * 38}'"
    assert refused(metrics_line(step="x" * 39)) == f"its field 'step': expected an integer, got '{'x' * 36}..."
    assert (
        refused(metrics_line(step=[1] * 13))
        == f"its field 'step': expected an integer, got list {json.dumps([1] * 13)}"
    )
    assert refused(metrics_line(step=[1] * 14)) == (
        f"its field 'step': expected an integer, got list {json.dumps([1] * 14)[:40]}..."
    )
    forty, forty_one = ["x" * 36], ["x" * 37]  # JSON of 40 and of 41 characters: the first is shown whole
    assert refused(metrics_line(step=forty)) == f"its field 'step': expected an integer, got list {json.dumps(forty)}"
    assert refused(metrics_line(step=forty_one)) == (
        f"its field 'step': expected an integer, got list {json.dumps(forty_one)[:40]}..."
    )
    assert refused(metrics_line(step={"a": None})) == "its field 'step': expected an integer, got dict {\"a\": null}"
