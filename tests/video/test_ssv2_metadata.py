import json

import pytest

from vislearn.common.errors import UserError
from vislearn.video.data.ssv2 import (Record, class_names, load_labels, load_records, save_labels, save_records,
                           template_to_class)


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_template_to_class_removes_brackets():
    assert template_to_class("Putting [something] onto [something else]") == "Putting something onto something else"
    assert template_to_class("Pretending to pick [something] up") == "Pretending to pick something up"


def test_labels_accept_string_and_int_values(tmp_path):
    p = write(tmp_path / "labels.json", {"Pushing something from left to right": "1", "Moving something up": 0})
    labels = load_labels(p)
    assert labels == {"Pushing something from left to right": 1, "Moving something up": 0}
    assert class_names(labels) == ["Moving something up", "Pushing something from left to right"]
    save_labels(tmp_path / "out.json", labels)
    assert json.loads((tmp_path / "out.json").read_text()) == {
        "Moving something up": "0", "Pushing something from left to right": "1"}


def test_real_official_labels_load(sample_splits):
    labels = load_labels(sample_splits / "compositional" / "labels.json")
    assert len(labels) == 174
    assert sorted(labels.values()) == list(range(174))


def test_duplicate_index_is_an_error(tmp_path):
    p = write(tmp_path / "labels.json", {"a": "0", "b": "0"})
    with pytest.raises(UserError, match="index 0 used by both"):
        load_labels(p)


def test_records_roundtrip_real_sample(sample_splits, tmp_path):
    src = sample_splits / "fewshot" / "finetune_5shot_training.json"
    records = load_records(src)
    assert len(records) == 430
    assert all(r.template and r.placeholders for r in records)
    save_records(tmp_path / "out.json", records)
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(src.read_text())


def test_unknown_template_names_file_id_and_template(tmp_path):
    labels = {"Moving something up": 0}
    p = write(tmp_path / "train.json", [
        {"id": "1", "label": "moving cup up", "template": "Moving [something] up", "placeholders": ["cup"]},
        {"id": "7", "label": "x", "template": "Juggling [something]", "placeholders": ["ball"]},
    ])
    with pytest.raises(UserError) as e:
        load_records(p, labels)
    msg = str(e.value)
    assert "train.json" in msg and "id 7" in msg and "Juggling [something]" in msg


def test_test_list_has_only_ids(tmp_path):
    p = write(tmp_path / "test.json", [{"id": "1420"}, {"id": 9}])
    records = load_records(p)
    assert [r.id for r in records] == ["1420", "9"]
    assert records[0].class_name is None
    assert records[1].to_json() == {"id": "9"}


@pytest.mark.parametrize("bad,match", [
    ({"label": "x", "template": "Moving [something] up", "placeholders": []}, "missing field 'id'"),
    ({"id": "3", "label": "x", "template": "Moving [something] up"}, "missing field 'placeholders'"),
    ({"id": "3", "label": "x", "template": "Moving [something] up", "placeholders": "cup"}, "list of strings"),
])
def test_malformed_records(tmp_path, bad, match):
    p = write(tmp_path / "train.json", [bad])
    with pytest.raises(UserError, match=match):
        load_records(p, {"Moving something up": 0})


def test_truncated_json_names_file(tmp_path):
    p = tmp_path / "train.json"
    p.write_text('[{"id": "1", "label": "a"')
    with pytest.raises(UserError, match="train.json: not valid JSON"):
        load_records(p)


def test_duplicate_ids(tmp_path):
    p = write(tmp_path / "v.json", [{"id": "1"}, {"id": "1"}])
    with pytest.raises(UserError, match="id 1 appears more than once"):
        load_records(p)


def test_record_dataclass_json():
    r = Record(id="5", template="Moving [something] up", label="moving cup up", placeholders=["cup"])
    assert r.to_json() == {"id": "5", "label": "moving cup up", "template": "Moving [something] up",
                           "placeholders": ["cup"]}
