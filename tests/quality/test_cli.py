"""``diffii-datasets report``: the store's report from the command line, offline with --tiny-models."""

import json

import pytest

from diffii_datasets import cli
from tests.quality.stores import class_images, shifted, write_store


def _main(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_report_command_writes_the_report(tmp_path, capsys):
    names, real = class_images(2, 3)
    store = write_store(tmp_path / "store", real, [[shifted(i, 2) for i in images] for images in real], names)
    status, out, err = _main(capsys, "report", str(store.path), "-o", str(tmp_path / "report"), "--tiny-models",
                             "--device", "cpu", "--lpips-size", "32", "--kid-subsets", "2", "--classes", "1", "-q")
    assert status == 0, err
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [row["name"] for row in data["classes"]] == [names[1]]
    assert data["settings"]["lpips_size"] == 32 and data["settings"]["kid_subsets"] == 2
    assert "mean nothing" in out and "CLIP score" in out and str(tmp_path / "report" / "report.html") in out
    assert (tmp_path / "report" / "report.html").is_file()


def test_report_command_errors_name_the_problem(tmp_path, capsys):
    status, _, err = _main(capsys, "report", str(tmp_path), "-o", str(tmp_path / "out"), "--tiny-models")
    assert status == 1 and "not a diffii-datasets store" in err
    status, _, err = _main(capsys, "report", str(tmp_path), "-o", str(tmp_path / "out"), "--lpips-size", "8")
    assert status == 1 and "--lpips-size must be an int >= 32, got 8" in err


@pytest.mark.parametrize("command", ["report", "sweep"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exit:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0
    assert "examples:" in out and f"diffii-datasets {command}" in out.split("examples:")[1]
    assert "--tiny-models" in out and "--lpips-size" in out and "--clip-model" in out
