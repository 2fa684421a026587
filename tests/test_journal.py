"""The tracking journal on its own (``tracking/journal/ops.py`` and ``spool.py``): numbering,
delivery marks, settling after a crash, and every fault a journal met in the field: a torn last
line, a line of an unknown operation or a newer format, a known operation whose fields changed
shape, a line without an ``op``, bytes that are not UTF-8, every line written twice, damaged
marker and index files, links planted in its folders. A reopened ``Spool`` is what the next
process sees. No TensorFlow, no MLflow store."""

import json
import os
import stat
import time
import warnings

import pytest

from elistimator_tracking.errors import ModelDirectoryError, TrackingError, TrackingWarning
from elistimator_tracking.tracking.journal import ops
from elistimator_tracking.tracking.journal.spool import Spool, spool_path, spools_in

URI = "sqlite:////tmp/store/mlflow.db"


def tag(name, **extra):
    return ops.Tags(run="k", tags={"t": name}, **extra)


def names(spool):
    return [(op.seq, op.tags["t"]) for op in spool.pending()]


def opened(root, uri=URI):
    """The spool as the next process opens it, the warnings it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        spool = Spool(root, uri)
    return spool, [str(w.message) for w in caught]


def test_operations_are_numbered_in_order_and_kept_until_delivered(tmp_path):
    spool = Spool(tmp_path, URI)
    assert [spool.append(tag(k)).seq for k in "abc"] == [1, 2, 3]
    assert spool.delivered == 0 and names(spool) == [(1, "a"), (2, "b"), (3, "c")]
    spool.mark_delivered(2)
    spool.mark_delivered(1)  # an older mark never moves it back
    assert spool.delivered == 2 and names(spool) == [(3, "c")]
    again = Spool(tmp_path, URI)
    assert again.delivered == 2 and names(again) == [(3, "c")]
    assert again.append(tag("d")).seq == 4


def test_every_operation_survives_a_round_trip_through_its_line():
    examples = [
        ops.Start(seq=1, run="k", experiment="e", run_name=None, tags={"a": "b"}, run_id="r"),
        ops.Params(seq=2, run="k", params={"lr": "0.5"}),
        ops.Metrics(
            seq=3,
            run="k",
            metrics={"validation/loss": float("nan"), "x": 2.0},
            step=9,
            timestamp=5,
            model_key="k:9:abc",
            commit=ops.Clause("validation", 9, {"metrics": {"loss": 1.0}}),
        ),
        ops.Input(seq=4, run="k", dataset={"name": "d", "digest": "x"}, context="training"),
        ops.Artifacts(seq=5, run="k", directory="outbox/source-1", artifact_path="source"),
        ops.LoggedModel(
            seq=6,
            run="k",
            directory="outbox/m-1",
            step=9,
            key="k:9:abc",
            metadata_only=True,
            commit=ops.Clause("checkpoint", 9, {"files": {"model-9.index": "ab"}}),
        ),
        ops.DeleteModel(
            seq=7, run="k", step=3, key="k:3:def", commit=ops.Clause("branch", 3, {"dropped": {"5": {"loss": 0.5}}})
        ),
        ops.Finish(seq=8, run="k", status="FINISHED", error=None),
    ]
    for op in examples:
        decoded = ops.decode(op.encode())
        assert decoded.encode() == op.encode() and type(decoded) is type(op)


def test_a_line_release_0_1_wrote_reads_as_the_same_operation():
    line = (
        '{"seq":7,"run":"7b7e","op":"metrics","metrics":{"validation/accuracy":1.0},"step":3,"timestamp":17,'
        '"model_key":"7b7e:3:ab","commit":{"kind":"validation","step":3,"metrics":{"accuracy":1.0}}}'
    )
    op = ops.decode(line)
    assert isinstance(op, ops.Metrics) and op.seq == 7 and op.metrics == {"validation/accuracy": 1.0}
    assert op.commit.to_json() == {"kind": "validation", "step": 3, "metrics": {"accuracy": 1.0}}
    assert json.loads(op.encode())["v"] == ops.FORMAT


@pytest.mark.parametrize(
    "line, why",
    [
        ("{not json}", "not JSON"),
        ('["a", 1]', "not a JSON object"),
        ('{"run": "k", "op": "tags", "tags": {}}', "no sequence number"),
        ('{"seq": 0, "run": "k", "op": "tags", "tags": {}}', "no sequence number"),
        ('{"seq": 5, "run": "k", "tags": {}}', "operation None is not one this version knows"),
        ('{"seq": 5, "run": "k", "op": "metrics_v2", "metrics": {}}', "'metrics_v2' is not one this version knows"),
        ('{"v": 3, "seq": 5, "run": "k", "op": "tags", "tags": {}}', "journal format 3"),
        ('{"seq": 5, "op": "tags", "tags": {}}', "names no run"),
        ('{"seq": 5, "run": "k", "op": "metrics", "metrics": {"a": 1}, "step": 3}', "lacks the field 'timestamp'"),
        (
            '{"seq": 5, "run": "k", "op": "metrics", "metrics": [1, 2], "step": 3, "timestamp": 1}',
            "field 'metrics': expected an object of numbers",
        ),
        (
            '{"seq": 5, "run": "k", "op": "metrics", "metrics": {"a": "1"}, "step": 3, "timestamp": 1}',
            "field 'metrics': expected a number",
        ),
        (
            '{"seq": 5, "run": "k", "op": "logged_model", "directory": "d", "step": "9", "key": "x"}',
            "field 'step': expected an integer",
        ),
        (
            '{"seq": 5, "run": "k", "op": "tags", "tags": {}, "commit": {"kind": "validation_v2", "step": 1}}',
            "commit clause has a kind this version does not know",
        ),
    ],
)
def test_a_line_that_cannot_be_understood_says_why(line, why):
    with pytest.raises(ops.Undecodable, match=why):
        ops.decode(line)


def write_lines(spool, *lines: bytes):
    journal = spool.path / "journal.jsonl"
    journal.write_bytes(journal.read_bytes() + b"".join(line + b"\n" for line in lines))


def test_what_cannot_be_understood_moves_to_quarantine_with_one_warning_and_the_rest_is_kept(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a"))
    write_lines(
        spool,
        b'{"seq": 2, "run": "k", "op": "metrics_v2"}',
        b'{"seq": 3}',
        b'{"seq": 4, "run": "k", "op": "tags", "tags": {"t": "caf\xe9"}}',
        b"garbage text",
    )
    spool.close()
    again, warned = opened(tmp_path)
    assert len(warned) == 1 and not opened(tmp_path)[1]  # one warning, at the first reopening only
    reopened_journal = (spool.path / "journal.jsonl").read_text()
    assert "metrics_v2" not in reopened_journal
    quarantine = [json.loads(line) for line in (spool.path / "quarantine.jsonl").read_text().splitlines()]
    assert [q["journal_line"] for q in quarantine] == [2, 3, 4, 5]
    assert "not one this version knows" in quarantine[0]["why"] and "UTF-8" in quarantine[2]["why"]
    assert quarantine[2]["line"].endswith('"caf\\xe9"}}')  # the bytes kept, readable
    assert names(again) == [(1, "a")] and again.append(tag("b")).seq == 5


def test_the_quarantine_warning_names_the_journal_the_line_and_why(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a"))
    write_lines(spool, b'{"seq": 2, "run": "k", "op": "metrics_v2"}')
    spool.close()
    again, warned = opened(tmp_path)
    (message,) = warned
    assert str(spool.path / "journal.jsonl") in message and "line 2" in message
    assert "'metrics_v2' is not one this version knows" in message and "quarantine.jsonl" in message
    assert again.quarantined == ["line 2: its operation 'metrics_v2' is not one this version knows"]


@pytest.mark.parametrize("count, more", [(5, ""), (6, " (and 1 more)"), (7, " (and 2 more)")])
def test_the_warning_names_the_first_five_damaged_lines_and_counts_the_rest(tmp_path, count, more):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a"))
    write_lines(spool, *(b'{"seq": %d, "run": "k", "op": "metrics_v2"}' % seq for seq in range(2, count + 2)))
    spool.close()
    before = int(time.time() * 1000)
    again, (message,) = opened(tmp_path)
    after = int(time.time() * 1000)
    assert f"{count} line(s) could not be understood" in message and message.endswith(f"knows{more}")
    assert message.count("; line ") == 4 and "line 6: " in message and "line 7: " not in message
    quarantine = [json.loads(line) for line in (spool.path / "quarantine.jsonl").read_text().splitlines()]
    assert len(quarantine) == len(again.quarantined) == count
    assert all(before <= q["moved_ms"] <= after for q in quarantine)  # when each was moved, in ms


def test_the_journal_is_a_file_nobody_executes(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((spool.path / "journal.jsonl").stat().st_mode) == 0o644 & ~umask


def test_a_torn_last_line_is_cut_off_and_numbering_goes_on(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a"))
    spool.close()
    with open(spool.path / "journal.jsonl", "a") as handle:
        handle.write('{"seq": 2, "op": "met')
    again, warned = opened(tmp_path)
    assert not warned and names(again) == [(1, "a")]
    assert again.append(tag("b")).seq == 2
    assert names(Spool(tmp_path, URI)) == [(1, "a"), (2, "b")]


def test_every_line_written_twice_is_delivered_once_and_blank_lines_are_no_damage(tmp_path):
    spool = Spool(tmp_path, URI)
    for name in "ab":
        spool.append(tag(name))
    spool.close()
    journal = spool.path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n" + "".join(f"{line}\n{line}\n\n" for line in lines))
    again, warned = opened(tmp_path)
    assert not warned and names(again) == [(1, "a"), (2, "b")]


def test_numbering_goes_on_after_the_journal_is_compacted(tmp_path):
    spool = Spool(tmp_path, URI)
    spool.append(tag("a")), spool.append(tag("b"))
    spool.mark_delivered(1)
    spool.compact()  # not everything delivered: kept
    assert names(Spool(tmp_path, URI)) == [(2, "b")]
    spool.mark_delivered(2)
    spool.compact()
    assert not (spool.path / "journal.jsonl").exists()
    assert Spool(tmp_path, URI).append(tag("c")).seq == 3


@pytest.mark.parametrize("damage", [b"garbage", b"", b"\xff\xfe", b"-3"])
def test_a_damaged_delivered_mark_is_rebuilt_and_everything_is_sent_again(tmp_path, damage):
    spool = Spool(tmp_path, URI)
    for name in "abc":
        spool.append(tag(name))
    spool.mark_delivered(2)
    spool.close()
    (spool.path / "delivered").write_bytes(damage)
    again, warned = opened(tmp_path)
    if damage == b"-3":  # a number, but no sequence number: nothing was delivered
        assert again.delivered == 0
    else:
        assert len(warned) == 1 and str(spool.path / "delivered") in warned[0] and "rebuilt" in warned[0]
    assert names(again) == [(1, "a"), (2, "b"), (3, "c")] and again.append(tag("d")).seq == 4
    assert Spool(tmp_path, URI).delivered == 0


@pytest.mark.parametrize("damage", [b"{not json", b'["a"]', b'{"k": 1}', b"\xff"])
def test_a_damaged_run_index_is_rebuilt_empty_with_a_warning_naming_it(tmp_path, damage):
    spool = Spool(tmp_path, URI)
    spool.set_run("key-1", "abc")
    (spool.path / "runs.json").write_bytes(damage)
    again, warned = opened(tmp_path)
    assert again.run_id("key-1") is None
    assert len(warned) == 1 and str(spool.path / "runs.json") in warned[0] and "run key" in warned[0]
    assert json.loads((spool.path / "runs.json").read_text()) == {}


def test_a_damaged_store_file_is_rebuilt_from_the_store_the_model_directory_records(tmp_path):
    Spool(tmp_path, URI).append(tag("a"))
    store = spool_path(tmp_path, URI) / "store.json"
    store.write_text("garbage")
    with pytest.warns(TrackingWarning, match="store.json is damaged; rebuilt"):
        (spool,) = spools_in(tmp_path, (URI,))
    assert spool.tracking_uri == URI and json.loads(store.read_text()) == {"tracking_uri": URI}
    store.write_text('{"tracking_uri": "http://elsewhere"}')  # valid JSON, but not this folder's store
    with pytest.raises(TrackingError, match=r"store.json is damaged.*--tracking-uri"):
        list(spools_in(tmp_path, ("http://another",)))


def test_settle_keeps_committed_work_drops_the_rest_and_leaves_delivered_work_alone(tmp_path):
    spool = Spool(tmp_path, URI)
    clause = lambda step: ops.Clause("validation", step, {"metrics": {"loss": float(step)}})  # noqa: E731
    spool.append(tag("done", commit=clause(1)))
    spool.mark_delivered(1)
    spool.append(tag("kept", commit=clause(2)), durable=True)
    spool.append(tag("lost", commit=clause(3)), durable=True)
    spool.append(tag("plain"))
    spool.append(tag("lost too", commit=clause(5)))
    asked = []

    def committed(data):
        asked.append(data["step"])
        return data["step"] == 2

    assert spool.settle(committed) == 2
    assert asked == [2, 3, 5]
    pending = Spool(tmp_path, URI).pending()
    assert [(op.seq, op.tags["t"], op.commit is None) for op in pending] == [(2, "kept", True), (4, "plain", True)]
    assert spool.settle(lambda clause: False) == 0  # settled once: nothing left to decide


def test_settle_keeps_a_branch_whose_dropped_validation_came_back_with_the_same_values(tmp_path):
    """Training goes on from an earlier checkpoint and, deterministic, validates the dropped step again
    with the very same values; the process dies before the branch's retraction is delivered. By
    content alone the branch looks uncommitted (its dropped validation is in elistimator.json again),
    but the validation journaled after it is committed, and every commit writes all that came before
    it: the retraction is kept, or the store holds the step's value twice (found by 50 kills)."""
    spool = Spool(tmp_path, URI)
    metrics = {"loss": 0.5, "accuracy": 1.0}
    spool.append(tag("retraction", commit=ops.Clause("branch", 6, {"dropped": {"9": metrics}})), durable=True)
    spool.append(tag("validation again", commit=ops.Clause("validation", 9, {"metrics": metrics})), durable=True)
    index = {"kind": "validation", "step": 9, "metrics": metrics}  # what elistimator.json holds now
    held = lambda clause: clause["kind"] == "validation" and clause == index  # noqa: E731
    assert spool.settle(held) == 0
    assert [op.tags["t"] for op in Spool(tmp_path, URI).pending()] == ["retraction", "validation again"]


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
    Spool(tmp_path, URI).append(tag("a"))
    Spool(tmp_path, other)
    assert sorted(s.tracking_uri for s in spools_in(tmp_path)) == sorted([URI, other])
    assert json.loads((spool_path(tmp_path, URI) / "store.json").read_text()) == {"tracking_uri": URI}
    assert names(Spool(tmp_path, other)) == []


def test_outbox_directories_are_unique_and_swept_when_no_operation_needs_them(tmp_path):
    spool = Spool(tmp_path, URI)
    first, second, third = spool.outbox("step-5"), spool.outbox("step-5"), spool.outbox("step-6")
    assert len({first, second, third}) == 3 and all(d.is_dir() and not any(d.iterdir()) for d in (first, second))
    (first / "model.index").write_text("x")
    spool.append(ops.Artifacts(run="k", directory=spool.relative(third), artifact_path="a"))
    spool.append(ops.Artifacts(run="k", directory=spool.relative(first), artifact_path="a"))
    spool.mark_delivered(1)  # third's operation was delivered: its folder is no longer needed
    spool.sweep_outbox()
    assert first.is_dir() and not second.exists() and not third.exists()
    assert spool.outbox_path(spool.relative(first)) == first
    spool.remove_outbox(spool.relative(first))
    assert not first.exists()
    spool.remove_outbox(spool.relative(first))  # already gone (a replay after a crash): no error
    with pytest.raises(ModelDirectoryError, match="outside"):
        spool.outbox_path("../../elsewhere")


def users_files(tmp_path):
    files = tmp_path / "users-files"
    (files / "thesis").mkdir(parents=True)
    (files / "thesis" / "chapter1.tex").write_text("precious")
    (files / "notes.txt").write_text("precious")
    return files


def test_an_outbox_replaced_by_a_link_is_refused_and_nothing_behind_it_is_removed(tmp_path):
    model = tmp_path / "model"
    spool = Spool(model / "tracking", URI)
    files = users_files(tmp_path)
    os.rmdir(spool.path / "outbox")
    os.symlink(files, spool.path / "outbox")
    with pytest.raises(ModelDirectoryError, match=r"outbox is a symbolic link"):
        Spool(model / "tracking", URI)
    with pytest.raises(ModelDirectoryError, match="symbolic link"):
        spool.sweep_outbox()
    with pytest.raises(ModelDirectoryError, match="symbolic link"):
        spool.outbox("model-step-10")  # staging a checkpoint: nothing made behind the link
    assert (files / "thesis" / "chapter1.tex").read_text() == "precious" and (files / "notes.txt").exists()
    assert sorted(item.name for item in files.iterdir()) == ["notes.txt", "thesis"]


@pytest.mark.parametrize("name", ["journal.jsonl", "delivered", "runs.json", "quarantine.jsonl"])
def test_a_spool_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, name):
    model = tmp_path / "model"
    spool = Spool(model / "tracking", URI)
    spool.append(tag("a"))
    spool.close()
    target = tmp_path / "users-file"
    target.write_text("precious")
    (spool.path / name).unlink(missing_ok=True)
    os.symlink(target, spool.path / name)
    with pytest.raises(ModelDirectoryError, match="symbolic link"):
        reopened = Spool(model / "tracking", URI)
        reopened.append(tag("b"))
        reopened.mark_delivered(1)
    assert target.read_text() == "precious"


def test_a_link_inside_an_outbox_folder_is_removed_never_followed(tmp_path):
    spool = Spool(tmp_path / "model" / "tracking", URI)
    files = users_files(tmp_path)
    staged = spool.outbox("step-1")
    os.symlink(files, staged / "planted")
    spool.remove_outbox(spool.relative(staged))
    assert not staged.exists() and (files / "thesis" / "chapter1.tex").read_text() == "precious"
