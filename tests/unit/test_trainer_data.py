"""Reading of the labelled training data and its input errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamscore.errors import InputFileError
from streamscore.settings import TrainingSettings
from trainer.data import read_labelled_data


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _settings(path: Path, **values: Any) -> TrainingSettings:
    return TrainingSettings(data_path=path, **values)


def test_read_tsv_keeps_quotes_literal(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", 'ham\tsay "hi\nspam\tWIN "cash" now\n')

    frame = read_labelled_data(_settings(path))

    assert list(frame.columns) == ["label", "message"]
    assert frame["message"].tolist() == ['say "hi', 'WIN "cash" now']
    assert frame["label"].tolist() == ["ham", "spam"]


def test_read_csv_unquotes_fields_with_commas(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.csv", 'ham,"hi, there"\nspam,free\n')

    frame = read_labelled_data(_settings(path))

    assert frame["message"].tolist() == ["hi, there", "free"]


def test_read_custom_columns_follow_settings(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "1\thello\tham\n2\twin\tspam\n")

    frame = read_labelled_data(
        _settings(path, columns=["id", "text", "kind"], text_column="text", label_column="kind")
    )

    assert list(frame.columns) == ["id", "text", "kind"]
    assert frame["kind"].tolist() == ["ham", "spam"]


def test_read_missing_file_raises_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.tsv"

    with pytest.raises(InputFileError, match=f"training data {path} not found"):
        read_labelled_data(_settings(path))


def test_read_wrong_column_count_raises_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\nspam\twin\textra\nham\tbye\n")

    with pytest.raises(InputFileError, match="expected 2 columns at line 2, got 3") as info:
        read_labelled_data(_settings(path))

    assert str(path) in str(info.value)


def test_read_blank_line_raises_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\n\nspam\twin\n")

    with pytest.raises(InputFileError, match="expected 2 columns at line 2, got 0"):
        read_labelled_data(_settings(path))


def test_read_empty_label_raises_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\nspam\twin\n \tno label\n")

    with pytest.raises(InputFileError, match="empty label at line 3"):
        read_labelled_data(_settings(path))


def test_read_empty_file_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "")

    with pytest.raises(InputFileError, match=f"training data {path} is empty"):
        read_labelled_data(_settings(path))


def test_read_single_label_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\nham\tbye\n")

    with pytest.raises(InputFileError, match="only one label 'ham' found, expected at least two"):
        read_labelled_data(_settings(path))


def test_read_missing_positive_label_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\nspam\twin\n")

    with pytest.raises(InputFileError, match=r"positive label 'junk' not found, labels are \["):
        read_labelled_data(_settings(path, positive_label="junk"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"label_column": "kind"}, "label column 'kind' is not in columns"),
        ({"text_column": "body"}, "text column 'body' is not in columns"),
        ({"columns": ["label", "label"]}, "duplicate names in columns"),
    ],
)
def test_read_inconsistent_columns_raises(
    tmp_path: Path, values: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path / "sms.tsv", "ham\thello\nspam\twin\n")

    with pytest.raises(InputFileError, match=expected):
        read_labelled_data(_settings(path, **values))


def test_read_unsupported_extension_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.json", "ham\thello\nspam\twin\n")

    with pytest.raises(
        InputFileError, match="unsupported extension '.json', expected .tsv or .csv"
    ):
        read_labelled_data(_settings(path))


def test_read_invalid_utf8_raises(tmp_path: Path) -> None:
    path = tmp_path / "sms.tsv"
    path.write_bytes(b"ham\thello\nspam\twin \xff\n")

    with pytest.raises(InputFileError, match="is not valid UTF-8: invalid start byte at byte 0xff"):
        read_labelled_data(_settings(path))


def test_read_directory_raises(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.mkdir()

    with pytest.raises(InputFileError, match=f"cannot read training data {path}"):
        read_labelled_data(_settings(path))


def test_read_unterminated_csv_quote_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "sms.csv", 'ham,"hello\nspam,win\n')

    with pytest.raises(InputFileError, match="malformed .csv file"):
        read_labelled_data(_settings(path))


def _tabular(path: Path, **values: Any) -> TrainingSettings:
    return TrainingSettings(
        data_path=path,
        columns=None,
        pipeline="tabular",
        numeric_columns=["amount", "hour"],
        categorical_columns=["country"],
        positive_label="fraud",
        **values,
    )


def test_read_header_line_names_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "pay.csv", "amount,hour,country,label\n12.5,3,DE,ok\n900,2,NG,fraud\n")

    frame = read_labelled_data(_tabular(path))

    assert list(frame.columns) == ["amount", "hour", "country", "label"]
    assert frame["amount"].tolist() == [12.5, 900.0]
    assert str(frame["hour"].dtype) == "float64"
    assert frame["country"].tolist() == ["DE", "NG"]


@pytest.mark.parametrize("bad", ["twelve", "", "nan", "inf"])
def test_read_non_number_in_numeric_column_raises(tmp_path: Path, bad: str) -> None:
    text = f"amount,hour,country,label\n12.5,3,DE,ok\n{bad},2,NG,fraud\n"
    path = _write(tmp_path / "pay.csv", text)

    expected = f"expected a finite number in column 'amount' at line 3, got '{bad}'"

    with pytest.raises(InputFileError, match=expected):
        read_labelled_data(_tabular(path))


def test_read_missing_feature_column_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "pay.csv", "amount,hour,label\n12.5,3,ok\n900,2,fraud\n")

    with pytest.raises(InputFileError, match="feature column 'country' is not in columns"):
        read_labelled_data(_tabular(path))


def test_read_header_only_file_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "pay.csv", "amount,hour,country,label\n")

    with pytest.raises(InputFileError, match="is empty: expected one labelled row per line"):
        read_labelled_data(_tabular(path))


def test_read_empty_file_without_header_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "pay.csv", "")

    with pytest.raises(InputFileError, match="is empty: expected a header line"):
        read_labelled_data(_tabular(path))
