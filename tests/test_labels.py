"""read_labels on the column variants of the four MMSA datasets, and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from data_fixtures import SIMS_HEADER, write_labels

from msa.data.labels import LabelFileError, read_labels, split

MOSEI_HEADER = ["video_id", "clip_id", "text", "label", "annotation", "mode", "label_T", "label_A", "label_V"]
OLD_HEADER = ["video_id", "clip_id", "text", "label", "annotation", "mode", "label_by"]


def test_sims_keeps_zero_padded_ids_and_builds_paths(tmp_path):
    write_labels(tmp_path, [
        ["video_0001", "0001", "我很开心", "0.8", "0.6", "1.0", "0.8", "Positive", "train"],
        ["video_0001", "0002", "还行吧, 一般", "-0.2", "0.0", "-0.4", "-0.2", "Negative", "valid"],
        ["video_0060", "0010", "NA", "-1.0", "-1.0", "-0.8", "-1.0", "Negative", "test"],
    ], SIMS_HEADER)
    df = read_labels(tmp_path, "sims")
    assert list(df.columns) == ["id", "video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V",
                                "conflict", "mode", "path"]
    assert df["conflict"].isna().all()  # no conflict column in a real release
    assert df["id"].tolist() == ["video_0001$_$0001", "video_0001$_$0002", "video_0060$_$0010"]
    assert df["clip_id"].tolist() == ["0001", "0002", "0010"]
    assert df["text"].tolist() == ["我很开心", "还行吧, 一般", "NA"]  # "NA" is a transcript, not a missing value
    assert df["label"].tolist() == [0.8, -0.2, -1.0] and df["label"].dtype == "float64"
    assert df["label_A"].tolist() == [1.0, -0.4, -0.8]
    assert df["mode"].tolist() == ["train", "valid", "test"]
    assert df["path"][2] == str(tmp_path / "Raw" / "video_0060" / "0010.mp4")
    assert df.attrs["n_unlabelled"] == 0


def test_conflict_column_is_read_by_name_and_checked(tmp_path):
    header = [*SIMS_HEADER, "conflict"]
    write_labels(tmp_path, [
        ["video_0001", "0001", "great, just great", "-0.8", "0.8", "-1.0", "-0.6", "Negative", "test", "1"],
        ["video_0001", "0002", "fine", "0.4", "0.4", "0.2", "0.6", "Positive", "test", "0"],
        ["video_0001", "0003", "ok", "0.0", "0.0", "0.0", "0.0", "Neutral", "train", ""],
    ], header)
    df = read_labels(tmp_path, "hard")
    assert df["conflict"].tolist()[:2] == [1.0, 0.0] and math.isnan(df["conflict"][2])
    assert df["conflict"].dtype == "float64"
    write_labels(tmp_path, [["video_0001", "0001", "x", "0.2", "0.2", "0.2", "0.2", "Positive", "test", "2"]], header)
    with pytest.raises(LabelFileError, match="hard: conflict must be 0 or 1 .*'2'"):
        read_labels(tmp_path, "hard")


def test_headerless_sims_file_reads_in_canonical_order(tmp_path):
    write_labels(tmp_path, [["video_0001", "0001", "好", "0.6", "0.4", "0.6", "0.8", "Positive", "train"]], None)
    df = read_labels(tmp_path, "sims")
    assert df.loc[0, "id"] == "video_0001$_$0001"
    assert (df.loc[0, "label"], df.loc[0, "label_T"], df.loc[0, "label_V"]) == (0.6, 0.4, 0.8)


def test_headerless_mosi_file_is_an_error(tmp_path):
    # MOSI/MOSEI releases differ in column order, so no order is assumed for them.
    write_labels(tmp_path, [["abc", "1", "ok", "0.5", "", "", "", "Positive", "train"]], None)
    with pytest.raises(LabelFileError, match="mosi.*no header"):
        read_labels(tmp_path, "mosi")


def test_simsv2_meta_csv_mode_aliases_and_unlabelled_rows(tmp_path):
    header = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]
    write_labels(tmp_path, [
        ["aqgy3_0001", "00000", "一", "0.2", "0.2", "0.0", "0.4", "Positive", "train"],
        ["aqgy3_0001", "00001", "二", "-0.6", "-0.4", "-0.6", "-0.8", "Negative", "validation"],
        ["aqgy3_0001", "00002", "三", "0.0", "0.0", "0.0", "0.0", "Neutral", " Val "],
        ["aqgy3_0001", "00003", "四", "1.0", "1.0", "1.0", "1.0", "Positive", "DEV"],
        ["aqgy1_0001", "00000", "无标签", "", "", "", "", "", ""],  # v2(u): no label, no split
        ["aqgy1_0001", "00001", "无标签", "", "", "", "", "", "train"],
    ], header, name="meta.csv")
    df = read_labels(tmp_path, "simsv2")
    assert len(df) == 4 and df.attrs["n_unlabelled"] == 2
    assert df["clip_id"].tolist() == ["00000", "00001", "00002", "00003"]
    assert df["mode"].tolist() == ["train", "valid", "valid", "valid"]
    assert df.attrs["label_file"].endswith("meta.csv")
    assert df["path"][1].endswith(str(Path("Raw") / "aqgy3_0001" / "00001.mp4"))


def test_meta_s_csv_name(tmp_path):
    write_labels(tmp_path, [["v", "00000", "t", "0.4", "", "", "", "Positive", "test"]], SIMS_HEADER,
                 name="meta(s).csv")
    assert read_labels(tmp_path, "simsv2")["id"].tolist() == ["v$_$00000"]


def test_mosi_empty_unimodal_labels_are_nan(tmp_path):
    write_labels(tmp_path, [
        ["03bSnISJMiM", "11", "i mean it was ok", "-0.5", "", "", "", "Neutral", "train"],
        ["-3g5yACwYnA", "1", "loved it", "2.3333332538604736", "", "", "", "Positive", "test"],
    ], SIMS_HEADER)
    df = read_labels(tmp_path, "mosi")
    assert df["id"].tolist() == ["03bSnISJMiM$_$11", "-3g5yACwYnA$_$1"]
    assert df["label"].tolist() == [-0.5, 2.3333332538604736]  # parsed to float64, not re-rounded
    assert df[["label_T", "label_A", "label_V"]].isna().all().all()
    # The annotation says Neutral for -0.5 (a known MOSI row): it is ignored, the label stays -0.5.
    assert "annotation" not in df.columns


def test_mosei_column_order_is_read_by_name(tmp_path):
    write_labels(tmp_path, [
        ["-3g5yACwYnA", "10", "it was good", "0.6666666865348816", "Positive", "valid", "", "", ""],
    ], MOSEI_HEADER)
    df = read_labels(tmp_path, "mosei")
    row = df.iloc[0]
    assert (row["id"], row["text"], row["label"], row["mode"]) == (
        "-3g5yACwYnA$_$10", "it was good", 0.6666666865348816, "valid")
    assert math.isnan(row["label_T"])


def test_old_release_with_label_by_and_no_unimodal_columns(tmp_path):
    write_labels(tmp_path, [["_dI--eQ6qVU", "2", "so so", "0.0", "Neutral", "train", "0"]], OLD_HEADER)
    df = read_labels(tmp_path, "mosi")
    assert df.loc[0, "id"] == "_dI--eQ6qVU$_$2" and df.loc[0, "label"] == 0.0
    assert df[["label_T", "label_A", "label_V"]].isna().all().all()
    assert "label_by" not in df.columns


def test_emotion_column_instead_of_annotation(tmp_path):
    header = [c if c != "annotation" else "emotion" for c in SIMS_HEADER]
    write_labels(tmp_path, [["video_0001", "0001", "好", "0.4", "0.4", "0.4", "0.4", "Positive", "train"]], header)
    assert read_labels(tmp_path, "sims")["label"].tolist() == [0.4]


def test_split_selects_rows_and_keeps_attrs(tmp_path):
    write_labels(tmp_path, [
        ["v", "1", "a", "1.0", "", "", "", "", "train"], ["v", "2", "b", "0.0", "", "", "", "", "test"],
        ["v", "3", "c", "-1.0", "", "", "", "", "dev"],
    ], SIMS_HEADER)
    df = read_labels(tmp_path, "mosi")
    assert split(df, "validation")["id"].tolist() == ["v$_$3"]
    assert split(df, "test").attrs["dataset"] == "mosi"
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        split(df, "holdout")


# -- errors ------------------------------------------------------------------------------------------

def test_missing_required_columns_name_dataset_file_and_columns(tmp_path):
    write_labels(tmp_path, [["v", "1", "0.5", "train"]], ["video_id", "clip_id", "label", "mode"])
    with pytest.raises(LabelFileError) as err:
        read_labels(tmp_path, "mosi")
    msg = str(err.value)
    assert "mosi" in msg and str(tmp_path / "label.csv") in msg and "['text']" in msg


def test_unknown_mode_names_value_and_file(tmp_path):
    write_labels(tmp_path, [["v", "1", "t", "0.5", "", "", "", "", "holdout"]], SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"sims: unknown mode 'holdout' in .*label\.csv"):
        read_labels(tmp_path, "sims")


def test_no_label_file(tmp_path):
    with pytest.raises(LabelFileError, match=r"mosei: no label file in .*label\.csv, meta\.csv, meta\(s\)\.csv"):
        read_labels(tmp_path, "mosei")


def test_non_numeric_label_and_duplicate_ids(tmp_path):
    write_labels(tmp_path, [["v", "1", "t", "high", "", "", "", "", "train"]], SIMS_HEADER)
    with pytest.raises(LabelFileError, match="non-numeric label values.*'high'"):
        read_labels(tmp_path, "mosi")
    write_labels(tmp_path, [["v", "1", "t", "0.1", "", "", "", "", "train"]] * 2, SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"duplicate clips .*v\$_\$1"):
        read_labels(tmp_path, "mosi")


def test_output_is_a_dataframe_per_labelled_row(tmp_path):
    # 3 rows, 1 unlabelled -> 2 rows out: hand count.
    write_labels(tmp_path, [["v", str(i), "t", lab, "", "", "", "", "train"] for i, lab in
                            enumerate(["0.2", "", "-0.2"])], SIMS_HEADER)
    df = read_labels(tmp_path, "sims")
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and df.attrs["n_unlabelled"] == 1


def _sims_row(clip: str, label: str, mode: str = "train", *, t: str = "0.0") -> list[str]:
    return ["video_0001", clip, "words", label, t, "0.0", "0.0", "Neutral", mode]


@pytest.mark.parametrize("dataset, label", [("sims", "2.4"), ("sims", "100000"), ("mosi", "3.6"),
                                            ("mosi", "-4.0"), ("sims", "inf"), ("mosi", "-inf")])
def test_labels_outside_the_datasets_range_name_dataset_clip_and_range(tmp_path, dataset, label):
    header = SIMS_HEADER if dataset == "sims" else ["video_id", "clip_id", "text", "label", "annotation", "mode"]
    rows = [_sims_row("0001", "0.2"), _sims_row("0002", label)] if dataset == "sims" else \
        [["vid", "1", "x", "1.0", "Positive", "train"], ["vid", "2", "x", label, "Positive", "train"]]
    write_labels(tmp_path, rows, header)
    bound = r"\[-1, 1\]" if dataset == "sims" else r"\[-3, 3\]"
    with pytest.raises(LabelFileError, match=rf"{dataset}: .*label outside {bound}.*\$_\$0*2.*line 3"):
        read_labels(tmp_path, dataset)


def test_a_sims_file_on_mosis_scale_says_which_dataset_it_looks_like(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "2.4"), _sims_row("0002", "-1.8")], SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"2 clips.*on a \[-3, 3\] scale.*data=mosi"):
        read_labels(tmp_path, "sims")


def test_unimodal_labels_outside_the_range_are_errors_too(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "0.2", t="1.5")], SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"sims: label_T outside \[-1, 1\].*\$_\$0001 \(1.5, line 2\)"):
        read_labels(tmp_path, "sims")


def test_labels_on_the_ranges_edges_are_read(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "1.0"), _sims_row("0002", "-1.0")], SIMS_HEADER)
    assert read_labels(tmp_path, "sims")["label"].tolist() == [1.0, -1.0]


def test_a_repeated_column_name_is_named(tmp_path):
    write_labels(tmp_path, [["v", "1", "x", "0.1", "0.2", "train"]], ["video_id", "clip_id", "text", "label", "label", "mode"])
    with pytest.raises(LabelFileError, match=r"mosi: .*label.csv repeats the column 'label'"):
        read_labels(tmp_path, "mosi")


def test_an_upper_case_header_is_read_as_the_header(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "0.4")], [c.upper() for c in SIMS_HEADER])
    df = read_labels(tmp_path, "sims")
    assert df["id"].tolist() == ["video_0001$_$0001"] and df["label"].tolist() == [0.4]
    assert df["label_T"].tolist() == [0.0]


def test_a_short_row_is_named_by_its_line(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "0.4"), ["video_0001", "0002", "words", "0.2"]], SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"sims: .*line 3 has 4 fields, the header 9"):
        read_labels(tmp_path, "sims")


def test_an_unknown_mode_names_its_line(tmp_path):
    write_labels(tmp_path, [_sims_row("0001", "0.4"), _sims_row("0002", "0.4", mode="tarin")], SIMS_HEADER)
    with pytest.raises(LabelFileError, match=r"sims: unknown mode 'tarin' .*line 3"):
        read_labels(tmp_path, "sims")
