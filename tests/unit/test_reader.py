"""Unit tests of `producer.reader`: formats, header handling and errors with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.reader import count_rows, detect_format, read_rows
from streamscore.errors import InputFileError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def test_read_rows_tsv_with_columns_keeps_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, "sms.tsv", 'ham\tsay "hi" to "them\nspam\tWIN now\n')

    rows = list(read_rows(path, columns=["label", "message"]))

    assert rows == [
        {"label": "ham", "message": 'say "hi" to "them'},
        {"label": "spam", "message": "WIN now"},
    ]


def test_read_rows_tsv_with_header_uses_header_names(tmp_path: Path) -> None:
    path = write(tmp_path, "data.tsv", "id\ttext\n1\thello\n")

    assert list(read_rows(path)) == [{"id": "1", "text": "hello"}]


def test_read_rows_csv_quoted_field_spans_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", 'id,text\n1,"a, b"\n2,"two\nlines"\n')

    assert list(read_rows(path)) == [{"id": "1", "text": "a, b"}, {"id": "2", "text": "two\nlines"}]


def test_read_rows_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"id": 1, "text": "a"}\n\n{"id": 2, "text": "b"}\n')

    assert list(read_rows(path)) == [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]


def test_read_rows_format_overrides_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", "a,b\n1,2\n")

    assert list(read_rows(path, file_format="csv")) == [{"a": "1", "b": "2"}]


def test_read_rows_crlf_and_bom_are_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", b"\xef\xbb\xbfid,text\r\n1,x\r\n")

    assert list(read_rows(path)) == [{"id": "1", "text": "x"}]


def test_read_rows_is_lazy(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"id": 1}\nnot json\n')

    rows = read_rows(path)

    assert next(rows) == {"id": 1}


def test_read_rows_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.tsv"

    with pytest.raises(
        InputFileError, match=r"input file '.*absent\.tsv' not found; check the path"
    ):
        list(read_rows(path))


def test_read_rows_wrong_field_count_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sms.tsv", "ham\tok\nspam\tone\textra\n")

    with pytest.raises(InputFileError, match=r"sms\.tsv: line 2: expected 2 fields, got 3"):
        list(read_rows(path, columns=["label", "message"]))


def test_read_rows_after_multiline_row_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", 'id,text\n1,"two\nlines"\n2\n')

    with pytest.raises(InputFileError, match=r"line 4: expected 2 fields, got 1"):
        list(read_rows(path))


def test_read_rows_jsonl_not_object_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"id": 1}\n[1, 2]\n')

    with pytest.raises(InputFileError, match=r"line 2: expected a JSON object, got list"):
        list(read_rows(path))


def test_read_rows_jsonl_invalid_json_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"id": 1}\n\n{"id": \n')

    with pytest.raises(InputFileError, match=r"line 3: invalid JSON"):
        list(read_rows(path))


def test_read_rows_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.tsv", b"ham\tok\nspam\tbad \xff byte\n")

    with pytest.raises(InputFileError, match=r"line 2: invalid UTF-8 at byte 9"):
        list(read_rows(path, columns=["label", "message"]))


def test_read_rows_unknown_field_lists_header(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,text\n1,x\n")

    with pytest.raises(
        InputFileError, match=r"unknown field 'label', expected one of the columns in the header"
    ):
        list(read_rows(path, fields=["text", "label"]))


def test_read_rows_unknown_field_lists_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "data.tsv", "ham\tx\n")

    with pytest.raises(InputFileError, match=r"the given columns: label, message"):
        list(read_rows(path, columns=["label", "message"], fields=["text"]))


def test_read_rows_jsonl_missing_field_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"text": "a"}\n{"other": 1}\n')

    with pytest.raises(InputFileError, match=r"line 2: missing field 'text'"):
        list(read_rows(path, fields=["text"]))


def test_read_rows_repeated_header_name_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,id\n1,2\n")

    with pytest.raises(InputFileError, match=r"column 'id' appears twice in the header"):
        list(read_rows(path))


def test_read_rows_empty_file_needs_header(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "")

    with pytest.raises(InputFileError, match=r"the file is empty, expected a header line"):
        list(read_rows(path))


def test_read_rows_columns_for_jsonl_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", "{}\n")

    with pytest.raises(InputFileError, match=r"column names apply to CSV and TSV"):
        list(read_rows(path, columns=["a"]))


def test_detect_format_unknown_extension_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        InputFileError, match=r"cannot detect the format from the extension '\.txt'"
    ):
        detect_format(tmp_path / "data.txt")


def test_detect_format_unknown_format_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"unknown format 'xml'"):
        detect_format(tmp_path / "data.tsv", "xml")


def test_count_rows_header_and_blank_lines_excluded(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,text\n1,a\n\n2,b\n")

    assert count_rows(path) == 2


def test_count_rows_jsonl_counts_every_object(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", "{}\n{}\n{}\n")

    assert count_rows(path) == 3


def test_count_rows_sms_data_matches_read_rows() -> None:
    path = Path(__file__).resolve().parents[2] / "data" / "sms_spam_collection.tsv"

    rows = sum(1 for _ in read_rows(path, columns=["label", "message"]))

    assert count_rows(path, has_header=False) == rows
