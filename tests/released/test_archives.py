"""Safe extraction of the released archives, and locating files inside them (no network, no torch)."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from diffii_datasets._io import read_json
from diffii_datasets.released.archives import (
    MARKER,
    DamagedArchiveError,
    UnsafeArchiveError,
    archive_files,
    extract_archive,
)
from diffii_datasets.released.locating import locate
from tests.released.fakehub import zip_bytes

GOOD = {"suffix/cub/5shot.txt": b"on a branch\n", "suffix/cub/10shot.txt": b"in the sky\n"}


def _zip(path, members, *, mode=None, compression=zipfile.ZIP_DEFLATED):
    """Write a zip whose members are ``{name: bytes}``; ``mode`` sets the Unix mode of every member."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def test_extracts_every_member_once_with_the_marker_written_last(tmp_path):
    archive = tmp_path / "suffix.zip"
    archive.write_bytes(zip_bytes(GOOD))
    target = extract_archive(archive, tmp_path / "out" / "suffix", progress=False)
    assert (target / "suffix/cub/5shot.txt").read_bytes() == b"on a branch\n"
    assert read_json(target / MARKER)["files"] == 2
    before = (target / "suffix/cub/5shot.txt").stat().st_mtime_ns
    archive.write_bytes(b"no longer read")  # a complete extraction is reused without opening the archive
    assert extract_archive(archive, tmp_path / "out" / "suffix", progress=False) == target
    assert (target / "suffix/cub/5shot.txt").stat().st_mtime_ns == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".suffix.lock", "suffix"]


def test_a_selection_extracts_only_the_members_it_keeps(tmp_path):
    archive = tmp_path / "datasets.zip"
    archive.write_bytes(zip_bytes({"datasets/cub/test.txt": b"x 0\n", "datasets/cub/test/A/a.jpg": b"jpeg"}))
    target = extract_archive(archive, tmp_path / "datasets", select=lambda name: name.endswith(".txt"),
                             selection="lists", progress=False)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted([MARKER, "datasets/cub/test.txt"])
    # Asking for everything later extracts again (the marker records the selection).
    extract_archive(archive, tmp_path / "datasets", progress=False)
    assert (target / "datasets/cub/test/A/a.jpg").read_bytes() == b"jpeg"


def test_an_interrupted_extraction_is_started_over(tmp_path):
    archive = tmp_path / "suffix.zip"
    archive.write_bytes(zip_bytes(GOOD))
    leftover = tmp_path / ".suffix.partial-abc"
    (leftover / "suffix").mkdir(parents=True)
    (leftover / "suffix" / "half.txt").write_bytes(b"half")
    unmarked = tmp_path / "suffix"  # a target without its marker is not trusted
    unmarked.mkdir()
    (unmarked / "stale.txt").write_bytes(b"stale")
    target = extract_archive(archive, tmp_path / "suffix", progress=False)
    assert not leftover.exists() and not (target / "stale.txt").exists()
    assert (target / "suffix/cub/10shot.txt").read_bytes() == b"in the sky\n"


@pytest.mark.parametrize("name, expected", [
    ("../evil.txt", "would leave the target directory"),
    ("suffix/../../evil.txt", "would leave the target directory"),
    ("..\\evil.txt", "would leave the target directory"),
    ("/tmp/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
])
def test_members_that_would_leave_the_target_are_refused(tmp_path, name, expected):
    archive = _zip(tmp_path / "suffix.zip", {**GOOD, name: b"evil"})
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafeArchiveError, match=expected) as error:
        extract_archive(archive, tmp_path / "out" / "deep" / "suffix", progress=False)
    assert str(archive) in str(error.value) and repr(name) in str(error.value)
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "out" / "deep" / "suffix").exists()  # nothing was written


def test_links_and_special_members_are_refused(tmp_path):
    link = _zip(tmp_path / "link.zip", {"suffix/link": b"/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(link, tmp_path / "link", progress=False)
    fifo = _zip(tmp_path / "fifo.zip", {"suffix/fifo": b""}, mode=stat.S_IFIFO | 0o644)
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        extract_archive(fifo, tmp_path / "fifo", progress=False)
    assert not (tmp_path / "link").exists() and not (tmp_path / "fifo").exists()


def test_a_member_twice_and_sizes_beyond_the_cap_are_refused(tmp_path):
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("suffix/a.txt", b"one")
        with pytest.warns(UserWarning):
            archive.writestr("suffix/a.txt", b"two")
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        extract_archive(twice, tmp_path / "twice", progress=False)
    big = tmp_path / "big.zip"
    big.write_bytes(zip_bytes({"suffix/zeros.txt": bytes(10_000)}))  # compresses to a few bytes
    with pytest.raises(UnsafeArchiveError, match="max_bytes=1000"):
        extract_archive(big, tmp_path / "big", max_bytes=1000, progress=False)
    assert not (tmp_path / "big").exists()


def test_a_truncated_archive_is_named_as_damaged(tmp_path):
    archive = tmp_path / "ft_ti_db.zip"
    archive.write_bytes(zip_bytes(GOOD)[:-30])  # the end of the central directory is gone: a partial download
    with pytest.raises(DamagedArchiveError, match="damaged or was only partly downloaded") as error:
        extract_archive(archive, tmp_path / "ft_ti_db", progress=False)
    assert str(archive) in str(error.value) and "force_download" in str(error.value)
    assert not (tmp_path / "ft_ti_db").exists()


def test_a_member_with_damaged_data_is_named(tmp_path):
    data = b"on a branch, " * 50
    buffer = io.BytesIO(zip_bytes({"suffix/ok.txt": b"fine\n", "suffix/bad.txt": data}))
    raw = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        info = archive.getinfo("suffix/bad.txt")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 3] ^= 0xFF  # flip a byte of the compressed data: bad CRC or invalid deflate stream
    archive_path = tmp_path / "suffix.zip"
    archive_path.write_bytes(bytes(raw))
    with pytest.raises(DamagedArchiveError, match="'suffix/bad.txt' cannot be read"):
        extract_archive(archive_path, tmp_path / "suffix", progress=False)
    assert not (tmp_path / "suffix").exists()
    assert not list(tmp_path.glob(".suffix.partial-*"))  # the half-written work is removed


def test_locate_tries_the_scripts_path_then_without_its_first_folder_and_lists_the_archive(tmp_path):
    archive = tmp_path / "suffix.zip"
    archive.write_bytes(zip_bytes({"cub/5shot.txt": b"x\n", "cub/10shot.txt": b"y\n"}))  # zipped inside suffix/
    target = extract_archive(archive, tmp_path / "suffix", progress=False)

    def find(relative, purpose="suffix list"):
        return locate(target, [relative], purpose=purpose, where=str(archive), listing=lambda: archive_files(archive))

    assert find("suffix/cub/5shot.txt") == target / "cub/5shot.txt"
    with pytest.raises(FileNotFoundError) as error:
        find("suffix/pet/5shot.txt", "suffix list for pet-5shot")
    message = str(error.value)
    assert f"{archive} has no suffix list for pet-5shot: expected suffix/pet/5shot.txt" in message
    assert "It holds 2 files: cub/10shot.txt, cub/5shot.txt" in message


def test_windows_zips_with_backslash_directory_entries_extract_as_folders(tmp_path):
    archive = _zip(tmp_path / "ft_ti_db.zip", {"ft_ti_db\\": b"", "ft_ti_db\\cub\\": b"", "ft_ti_db\\cub\\5shot\\": b"",
                                               "ft_ti_db\\cub\\5shot\\a.bin": b"embeds"})
    target = extract_archive(archive, tmp_path / "ft_ti_db", progress=False)
    assert (target / "ft_ti_db/cub/5shot/a.bin").read_bytes() == b"embeds"
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        MARKER, "ft_ti_db/cub/5shot/a.bin"]
    assert archive_files(archive) == ["ft_ti_db/cub/5shot/a.bin"]
