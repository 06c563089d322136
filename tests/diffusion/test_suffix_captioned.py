"""The captioned provider, its summarisers that ask a language model, its cache and its model errors.

The captioned provider runs end to end with a tiny random BLIP captioner and a
tiny random Llama built from configs with locally made tokenizers and loaded
from directories, and with an OpenAI-compatible endpoint served on loopback.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from diffii_datasets.diffusion.suffixes import (
    CaptionedSuffixes,
    Captioner,
    LocalLLMSummariser,
    OpenAICompatibleSummariser,
    SuffixParseError,
    builtin_suffixes,
    suffix_provider,
)
from diffii_datasets.testing import tiny_image_dataset

# ---------------------------------------------------------------- captioned provider, end to end

LM_WORDS = "on in a the near with branch sky water grass tree field road rain snow garden sitting flying".split()


def _tiny_blip(directory):
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor
    from transformers import BlipProcessor

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(special + LM_WORDS + ["bird", "photo"])},
                              bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=64, bos_token_id=5, pad_token_id=0,
                         sep_token_id=3, eos_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=32, image_text_hidden_size=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BlipForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)


def _tiny_llama(directory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>"] + LM_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=None, eos_token_id=None, pad_token_id=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.fixture
def tiny_model_dirs(tmp_path):
    blip, llama = tmp_path / "tiny-blip", tmp_path / "tiny-llama"
    _tiny_blip(blip)
    _tiny_llama(llama)
    return blip, llama


def _images(n=7, seed=0):
    dataset = tiny_image_dataset(num_classes=2, per_class=[4, 3], size=32, seed=seed)
    return [dataset[i][0] for i in range(n)]


def test_captioned_provider_end_to_end_with_cache(tiny_model_dirs, tmp_path, caplog):
    blip, llama = tiny_model_dirs
    cache = tmp_path / "cache"
    images = _images()
    provider = CaptionedSuffixes(Captioner(str(blip), device="cpu", batch_size=3),
                                 LocalLLMSummariser(str(llama), device="cpu", max_new_tokens=12),
                                 max_suffixes=4)
    suffixes = provider.suffixes(images, "bird", cache_dir=cache)

    assert 1 <= len(suffixes) <= 4
    for suffix in suffixes:  # noise, but made only of the tiny LM's words and normalised
        assert suffix and suffix == suffix.strip() and not suffix.endswith(".")
        assert set(suffix.split()) <= set(LM_WORDS)
    (captions_file,) = cache.glob("captions-*.json")
    (suffixes_file,) = cache.glob("suffixes-*.json")
    captions = json.loads(captions_file.read_text())["captions"]
    assert len(captions) == len(images) and all(isinstance(c, str) for c in captions)
    stored = json.loads(suffixes_file.read_text())
    assert stored["suffixes"] == suffixes and stored["summariser"] == f"llm:{llama.resolve()}"
    assert not list(cache.glob("*.tmp*"))

    # A second run, rebuilt from the spec, with the models gone: served from the cache, no captioning.
    shutil.rmtree(blip)
    shutil.rmtree(llama)
    again = suffix_provider(provider.spec())
    with caplog.at_level(logging.INFO, logger="diffii_datasets.diffusion.suffixes"):
        assert again.suffixes(list(images), "bird", cache_dir=cache) == suffixes
    assert "cached suffixes" in caplog.text and "captioning" not in caplog.text
    # Other images are another key: they need the (deleted) captioner.
    with pytest.raises(OSError, match=r"captioner model '.*tiny-blip' is neither an existing directory nor a Hub id"):
        again.suffixes(_images(seed=1), "bird", cache_dir=cache)


def test_captioned_provider_bad_input(tiny_model_dirs):
    blip, _ = tiny_model_dirs
    provider = CaptionedSuffixes(str(blip), "extractive")
    with pytest.raises(ValueError, match="at least one training image"):
        provider.suffixes([], "bird")
    with pytest.raises(ValueError, match="metaclass"):
        provider.suffixes(_images(2), " ")
    with pytest.raises(ValueError, match="max_suffixes"):
        CaptionedSuffixes(str(blip), "extractive", max_suffixes=0)


# ---------------------------------------------------------------- OpenAI-compatible endpoint on loopback

class _Endpoint:
    """A chat-completions server on 127.0.0.1 that records requests and answers what it is told."""

    def __init__(self):
        self.requests, self.answer, self.status = [], "", 200
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if endpoint.status == 200:
                    payload = {"choices": [{"message": {"role": "assistant", "content": endpoint.answer}}]}
                else:
                    payload = {"error": {"message": "invalid api key"}}
                data = json.dumps(payload).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def endpoint(monkeypatch):
    server = _Endpoint()
    for name in ("DIFFII_SUFFIX_API_BASE", "DIFFII_SUFFIX_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield server
    server.close()


SECRET = "sk-test-0123456789-secret"


def test_openai_summariser_posts_captions_and_parses_the_answer(endpoint, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/unused")  # the project's variables win
    monkeypatch.setenv("DIFFII_SUFFIX_API_BASE", endpoint.url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    endpoint.answer = "Here you go:\n1. a photo of a bird sitting on a branch.\n2. a photo of a bird in the sky."
    captions = ["a bird sitting on a branch", "a bird flying in the sky", "a bird sitting on a branch"]
    with caplog.at_level(logging.DEBUG):
        suffixes, raw = OpenAICompatibleSummariser("tiny-model").summarise(captions, "bird", 5)
    assert suffixes == ["sitting on a branch", "in the sky"] and raw == endpoint.answer
    (request,) = endpoint.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert request["body"]["model"] == "tiny-model" and request["body"]["temperature"] == 0
    prompt = request["body"]["messages"][0]["content"]
    assert prompt.index("a bird sitting on a branch") < prompt.index("a bird flying in the sky")  # most frequent first
    assert prompt.count("a bird sitting on a branch") == 1 and "a photo of a bird <context>." in prompt
    assert SECRET not in caplog.text and endpoint.url not in caplog.text


def test_openai_summariser_errors_never_show_the_key(endpoint, monkeypatch):
    with pytest.raises(ValueError, match="DIFFII_SUFFIX_API_BASE.*no default endpoint"):
        OpenAICompatibleSummariser("m").summarise(["a bird on a branch"], "bird", 3)
    monkeypatch.setenv("DIFFII_SUFFIX_API_BASE", endpoint.url)
    monkeypatch.setenv("DIFFII_SUFFIX_API_KEY", SECRET)
    endpoint.status = 401
    with pytest.raises(RuntimeError, match="HTTP 401") as info:
        OpenAICompatibleSummariser("m").summarise(["a bird on a branch"], "bird", 3)
    assert SECRET not in str(info.value) and endpoint.url not in str(info.value)


def test_captioned_provider_unusable_answer_errors_or_falls_back(
        tiny_model_dirs, endpoint, monkeypatch, tmp_path, caplog):
    blip, _ = tiny_model_dirs
    monkeypatch.setenv("DIFFII_SUFFIX_API_BASE", endpoint.url)
    endpoint.answer = "I'm sorry, I can't summarise these captions."
    cache = tmp_path / "cache"
    images = _images(4)
    spec = f'captioned:{{"captioner": "{blip}", "summariser": "openai:tiny", "max_suffixes": 3}}'
    with pytest.raises(SuffixParseError, match="I'm sorry, I can't summarise") as info:
        suffix_provider(spec).suffixes(images, "bird", cache_dir=cache)
    assert "fallback_to_builtin=True" in str(info.value)
    (captions_file,) = cache.glob("captions-*.json")
    captions = json.loads(captions_file.read_text())["captions"]

    # With the fallback: the built-in list, a warning, nothing cached; the cached captions are reused.
    shutil.rmtree(blip)
    fallback = suffix_provider(spec.replace("}", ', "fallback_to_builtin": true}'))
    with caplog.at_level(logging.WARNING):
        assert fallback.suffixes(images, "bird", cache_dir=cache) == builtin_suffixes("bird")
    assert "Falling back to the built-in suffix list" in caplog.text
    assert not list(cache.glob("suffixes-*.json"))
    assert all(c in endpoint.requests[-1]["body"]["messages"][0]["content"] for c in captions)


# ---------------------------------------------------------------- models that are not there, the cache file

def test_models_not_available_offline_say_how_to_get_them():
    """The network guard sets HF_HUB_OFFLINE=1: an uncached Hub id fails at once, without touching the network."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE
    with pytest.raises(OSError, match=r"captioner model 'nobody/no-such-captioner' is not in the local Hugging "
                                      r"Face cache.*`hf download nobody/no-such-captioner`.*local copy"):
        Captioner("nobody/no-such-captioner", device="cpu").caption(_images(1))
    with pytest.raises(OSError, match=r"summariser model 'nobody/no-such-llm' is not in the local Hugging "
                                      r"Face cache.*`hf download nobody/no-such-llm`.*local copy"):
        LocalLLMSummariser("nobody/no-such-llm", device="cpu").summarise(["a bird on a branch"], "bird", 3)
    spec = "captioned:captioner=nobody/no-such-captioner,summariser=extractive"
    with pytest.raises(OSError, match="`hf download nobody/no-such-captioner`"):
        suffix_provider(spec).suffixes(_images(2), "bird")


def test_a_hub_model_that_fails_to_load_online_is_named_with_the_download_command(monkeypatch):
    from huggingface_hub import constants

    from diffii_datasets._pretrained import from_pretrained

    class Refused:
        @staticmethod
        def from_pretrained(model, **kwargs):
            assert model == "org/gated" and kwargs == {"trust_remote_code": False}
            raise OSError("401 Client Error")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(OSError, match=r"could not load the captioner model 'org/gated' from the Hugging Face Hub "
                                      r"\(401 Client Error\).*`hf download org/gated`"):
        from_pretrained(Refused, "org/gated", "captioner", trust_remote_code=False)


class _FixedCaptioner(Captioner):
    """Captions from a list, counting calls: the provider's cache without a model."""

    def __init__(self, captions):
        super().__init__("fixed-captioner")
        self.fixed, self.calls = captions, 0

    def caption(self, images):
        self.calls += 1
        return [self.fixed[i % len(self.fixed)] for i in range(len(images))]


def test_unreadable_cache_files_are_ignored_with_a_warning_and_rewritten(tmp_path, caplog):
    captions = ["a bird sitting on a branch", "a bird flying in the sky"] * 2
    captioner = _FixedCaptioner(captions)
    provider = CaptionedSuffixes(captioner, "extractive")
    cache = tmp_path / "cache"
    images = _images(4)
    expected = provider.suffixes(images, "bird", cache_dir=cache)
    assert expected == ["flying in the sky", "sitting on a branch"] and captioner.calls == 1
    assert provider.suffixes(images, "bird", cache_dir=cache) == expected and captioner.calls == 1

    (captions_file,), (suffixes_file,) = cache.glob("captions-*.json"), cache.glob("suffixes-*.json")
    captions_file.write_text("{not json", encoding="utf-8")
    suffixes_file.write_text("[1, 2]", encoding="utf-8")  # valid JSON, but not an object
    with caplog.at_level(logging.WARNING):
        assert provider.suffixes(images, "bird", cache_dir=cache) == expected
    assert captioner.calls == 2 and caplog.text.count("ignoring unreadable cache file") == 2
    assert str(captions_file) in caplog.text and str(suffixes_file) in caplog.text
    assert json.loads(captions_file.read_text(encoding="utf-8"))["captions"] == captions
    assert json.loads(suffixes_file.read_text(encoding="utf-8"))["suffixes"] == expected
