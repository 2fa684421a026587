"""The tracking journal (``tracking/spool.py``) on its own: numbering, delivery marks,
settling after a crash, torn and damaged lines, run ids and the outbox, across reopenings
(a reopened ``Spool`` is what the next process sees). No TensorFlow, no MLflow."""

import json
import warnings

import pytest

from elistimator_tracking.tracking.base import TrackingWarning
from elistimator_tracking.tracking.spool import Spool, spool_path, spools_in

URI = "sqlite:////tmp/store/mlflow.db"


def ops(spool):
    return [(op["seq"], op["kind"]) for op in spool.pending()]


def test_operations_are_numbered_in_order_and_kept_until_delivered(tmp_path):
    spool = Spool(tmp_path, URI)
    assert [spool.append({"kind": k})["seq"] for k in "abc"] == [1, 2, 3]
    assert spool.delivered == 0 and ops(spool) == [(1, "a"), (2, "b"), (3, "c")]
    spool.mark_delivered(2)
    spool.mark_delivered(1)  # an older mark never moves it back
    assert spool.delivered == 2 and ops(spool) == [(3, "c")]
    again = Spool(tmp_path, URI)
    assert again.delivered == 2 and ops(again) == [(3, "c")]
    assert again.append({"kind": "d"})["seq"] == 4


def test_numbering_goes_on_after_the_journal_is_compacted(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append({"kind": "a"}), spool.append({"kind": "b"})
    spool.mark_delivered(1)
    spool.compact()  # not everything delivered: kept
    assert ops(Spool(tmp_path, URI)) == [(2, "b")]
    spool.mark_delivered(2)
    spool.compact()
    assert not (spool.path / "journal.jsonl").exists()
    assert Spool(tmp_path, URI).append({"kind": "c"})["seq"] == 3


def test_a_torn_last_line_is_cut_off_and_a_damaged_line_skipped_with_a_warning(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append({"kind": "a"}), spool.append({"kind": "b"})
    journal = spool.path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text(lines[0] + "\n" + "{not json}\n" + lines[1] + "\n" + '{"seq": 3, "ki')
    with pytest.warns(TrackingWarning, match="line 2 is damaged"):
        again = Spool(tmp_path, URI)
    assert journal.read_text().endswith(lines[1] + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        assert ops(again) == [(1, "a"), (2, "b")]
    assert again.append({"kind": "c"})["seq"] == 3


def test_settle_keeps_committed_work_drops_the_rest_and_leaves_delivered_work_alone(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append({"kind": "done", "commit": {"step": 1}})
    spool.mark_delivered(1)
    spool.append({"kind": "kept", "commit": {"step": 2}}, durable=True)
    spool.append({"kind": "lost", "commit": {"step": 3}}, durable=True)
    spool.append({"kind": "plain"})
    spool.append({"kind": "lost too", "commit": {"step": 5}})
    asked = []

    def committed(clause):
        asked.append(clause["step"])
        return clause["step"] == 2

    assert spool.settle(committed) == 2
    assert asked == [2, 3, 5]
    pending = Spool(tmp_path, URI).pending()
    assert [(op["seq"], op["kind"], "commit" in op) for op in pending] == [(2, "kept", False), (4, "plain", False)]
    assert spool.settle(lambda clause: False) == 0  # settled once: nothing left to decide


def test_blank_lines_are_no_damage(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append({"kind": "a"})
    journal = spool.path / "journal.jsonl"
    journal.write_text("\n" + journal.read_text() + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        assert ops(Spool(tmp_path, URI)) == [(1, "a")]


def test_the_spool_folder_of_a_store_keeps_its_name_across_versions(tmp_path):
    """Journals an earlier version left are found only if the folder name never changes."""
    assert spool_path(tmp_path, URI).name == "store-2eec334ac014"
    assert spool_path(tmp_path, "http://127.0.0.1:5000").name == "store-f9413619c309"
    spool = Spool(tmp_path / "model" / "tracking", URI)  # the model directory's tracking/ made on demand
    assert spool.path == tmp_path / "model" / "tracking" / "store-2eec334ac014" and spool.path.is_dir()


def test_run_ids_persist_and_are_forgotten_for_another_store(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.set_run("key-1", "abc")
    assert Spool(tmp_path, URI).run_id("key-1") == "abc"
    assert Spool(tmp_path, URI).run_id("key-2") is None
    spool.forget_runs()
    assert Spool(tmp_path, URI).run_id("key-1") is None


def test_each_store_has_its_own_spool_and_all_are_found(tmp_path):
    other = "http://127.0.0.1:5000"
    assert spool_path(tmp_path, URI) != spool_path(tmp_path, other)
    Spool(tmp_path, URI).append({"kind": "a"})
    Spool(tmp_path, other)
    assert sorted(s.tracking_uri for s in spools_in(tmp_path)) == sorted([URI, other])
    assert json.loads((spool_path(tmp_path, URI) / "store.json").read_text()) == {"tracking_uri": URI}
    assert ops(Spool(tmp_path, other)) == []


def test_outbox_directories_are_unique_and_swept_when_no_operation_needs_them(tmp_path):
    spool = Spool(tmp_path, URI)
    first, second, third = spool.outbox("step-5"), spool.outbox("step-5"), spool.outbox("step-6")
    assert len({first, second, third}) == 3 and all(d.is_dir() and not any(d.iterdir()) for d in (first, second))
    (first / "model.index").write_text("x")
    spool.append({"kind": "artifacts", "directory": spool.relative(third)})
    spool.append({"kind": "artifacts", "directory": spool.relative(first)})
    spool.mark_delivered(1)  # third's operation was delivered: its folder is no longer needed
    spool.sweep_outbox()
    assert first.is_dir() and not second.exists() and not third.exists()
    assert spool.outbox_path(spool.relative(first)) == first
    spool.remove_outbox(spool.relative(first))
    assert not first.exists()
    spool.remove_outbox(spool.relative(first))  # already gone (a replay after a crash): no error
