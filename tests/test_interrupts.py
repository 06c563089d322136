"""Clean endings on the command line: Ctrl-C is one line and exit status 130; a Hub out of reach is one line naming
HF_HUB_OFFLINE (or the `hf download` command); never a traceback."""

import signal
import subprocess
import sys

import pytest

from diffii_datasets import cli
from diffii_datasets._pretrained import HubUnreachableError, from_pretrained
from tests.classify.fixtures import write_store
from tests.helpers.cli import OWN_FLAGS, child_env

INTERRUPTED = "interrupted; rerun the same command to resume"


def test_ctrl_c_in_any_command_is_one_line_and_status_130(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("diffii_datasets.cli.store.run_info", interrupted)
    assert cli.main(["info", str(tmp_path)]) == 130
    assert capsys.readouterr().err == f"diffii-datasets info: {INTERRUPTED}\n"


@pytest.mark.slow
def test_ctrl_c_during_generate_stops_it_with_one_line(tmp_path):
    argv = [sys.executable, "-m", "diffii_datasets", "generate", *OWN_FLAGS, "--cache-dir", str(tmp_path),
            "--concept-train-steps", "100000"]  # the flag given last wins: a run that would go on for long
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    seen = []
    for line in process.stderr:  # work has started once the plan is shown
        seen.append(line)
        if line.startswith("ETA concept learning"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + err
    assert err.rstrip("\n").split("\n")[-1].split("\r")[-1] == f"diffii-datasets generate: {INTERRUPTED}"
    assert "Traceback" not in "".join(seen) + err and out == ""


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "store", [2, 1], classes=["red circle", "blue square"])


def _push(monkeypatch, capsys, store, failure):
    from huggingface_hub import HfApi

    def create_repo(api, repo_id, **kwargs):
        raise failure

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setenv("HF_TOKEN", "hf_NotARealToken")
    status = cli.main(["push", str(store.path), "--repo-id", "someone/shapes", "--config-name", "shapes"])
    return status, capsys.readouterr().err


def test_push_with_the_hub_offline_or_unreachable_is_one_line(monkeypatch, capsys, store):
    from huggingface_hub.errors import OfflineModeIsEnabled

    status, err = _push(monkeypatch, capsys, store, OfflineModeIsEnabled("Cannot reach https://huggingface.co: "
                                                                         "offline mode is enabled."))
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("diffii-datasets push: error: push needs the Hugging Face Hub here, but HF_HUB_OFFLINE=1 "
                          "is set: unset HF_HUB_OFFLINE to go online; to check a push without a network: push ... "
                          "--dry-run")

    status, err = _push(monkeypatch, capsys, store, _connection_failure())
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot reach the Hugging Face Hub (ConnectError: [Errno -2] Name or service not known)" in err
    assert "set HF_HUB_OFFLINE=1" in err and "push ... --dry-run" in err


def _connection_failure() -> Exception:
    """What huggingface_hub raises without a network: the HTTP library's ConnectError, from a DNS failure."""
    from huggingface_hub.utils import get_session

    transport = sys.modules[type(get_session()).__module__.split(".")[0]]  # httpx (or its vendored copy)
    error = transport.ConnectError("[Errno -2] Name or service not known")
    error.__cause__ = OSError(-2, "Name or service not known")
    return error


class _Loader:
    def __init__(self, failure):
        self.failure = failure

    def from_pretrained(self, model, **kwargs):
        raise OSError(f"Cannot load model {model}: the model is not cached locally and an error occurred while trying "
                      "to fetch metadata from the Hub. Please check out the root cause in the stacktrace above."
                      ) from self.failure


def test_a_model_the_hub_cannot_send_names_hf_hub_offline_and_hf_download(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(HubUnreachableError) as caught:
        from_pretrained(_Loader(_connection_failure()), "someone/some-model", "Stable Diffusion")
    message = str(caught.value)
    assert "the Hugging Face Hub is unreachable (ConnectError: [Errno -2] Name or service not known)" in message
    assert "`hf download someone/some-model`" in message and "HF_HUB_OFFLINE=1" in message
    assert "stacktrace" not in message
    with pytest.raises(OSError) as caught:  # an answer (no such repository), not a network failure
        from_pretrained(_Loader(ValueError("404 Client Error: Repository Not Found")), "someone/x", "captioner")
    assert not isinstance(caught.value, HubUnreachableError)
    assert "stacktrace" not in str(caught.value) and "an error occurred while trying to fetch metadata" in str(
        caught.value)


def test_the_command_line_reports_an_unreachable_model_as_one_line(monkeypatch, capsys, tmp_path):
    def unreachable(model, device=None):
        from_pretrained(_Loader(_connection_failure()), model, "Stable Diffusion")

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("diffii_datasets.prepare.load_generation_pipeline", unreachable)
    flags = [flag for flag in OWN_FLAGS if flag != "tiny"]
    flags[flags.index("--model") + 1:flags.index("--model") + 1] = ["someone/some-model"]
    assert cli.main(["generate", *flags, "--cache-dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "rerun with -v" not in err
    assert err.startswith("diffii-datasets generate: error: cannot download the Stable Diffusion model "
                          "'someone/some-model': the Hugging Face Hub is unreachable")
    assert not list(tmp_path.glob("*/store.json"))  # no empty store left behind
