"""The head of an export: its header as the CSV source reads it, its delimiter, and its first
rows as the file's own bytes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ometria_sync.scaffold import ExportError, guess_delimiter, read_head

TEXT = ('\ufeffid, email ,note\r\n1,a@example.com,"two\r\nlines"\r\n2,b@example.com,x\r\n'
        "3,c@example.com,y\r\n")


def test_the_first_rows_are_kept_as_the_files_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(TEXT.encode())
    head = read_head(path, 2)
    assert head.header == ["id", "email", "note"]
    assert head.rows == [["1", "a@example.com", "two\r\nlines"], ["2", "b@example.com", "x"]]
    assert head.sample == TEXT.encode()[: TEXT.encode().index(b"3,c@")]
    assert not head.gzip and head.not_utf8_line is None
    assert read_head(path, 10).sample == TEXT.encode()


def test_gzip_is_read_by_content(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.anything"
    path.write_bytes(gzip.compress(TEXT.encode()))
    head = read_head(path, 1)
    assert head.gzip and head.rows == [["1", "a@example.com", "two\r\nlines"]]


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,name\n1,Zoë\n2,Zoë\n".encode()[:-1].replace(b"\xc3\xab\n2", b"\xeb\n2")
                     + b"\n")
    assert read_head(path, 5).not_utf8_line == 2


def test_the_delimiter_is_the_one_the_header_uses_most() -> None:
    assert guess_delimiter("a;b;c,d\n") == ";"
    assert guess_delimiter("a\tb\tc\n") == "\t"
    assert guess_delimiter("single\n") == ","
    assert guess_delimiter("a,b;c\n") == ","  # a tie goes to the comma


def test_an_empty_or_missing_file_is_an_export_error(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ExportError, match=r"empty\.csv: the file is empty"):
        read_head(tmp_path / "empty.csv", 5)
    with pytest.raises(ExportError, match="cannot read"):
        read_head(tmp_path / "missing.csv", 5)
