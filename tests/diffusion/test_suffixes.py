"""Suffix providers: answer parsing, built-in and user lists, prompt length, the captioned provider.

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

from diffii_datasets.diffusion.prompts import build_prompt
from diffii_datasets.diffusion.suffixes import (
    BUILTIN_FAMILIES,
    GENERIC_FAMILY,
    BuiltinSuffixes,
    CaptionedSuffixes,
    Captioner,
    ExtractiveSummariser,
    LocalLLMSummariser,
    OpenAICompatibleSummariser,
    SuffixParseError,
    UserSuffixes,
    builtin_suffixes,
    check_prompt_length,
    family_for_metaclass,
    parse_suffixes,
    suffix_provider,
)
from diffii_datasets.testing import tiny_clip_tokenizer, tiny_image_dataset

# ---------------------------------------------------------------- parser

REALISTIC_ANSWERS = [
    # numbered, quoted, with prefix, chatter around, a duplicate and an off-metaclass line
    ('Sure! Here are the suffixes:\n\n1. "A photo of a bird perched on a tree branch."\n'
     '2) a photo of a bird, flying in the blue sky.\n3. A photo of a bird perched on a tree branch.\n'
     '4. a photo of a sparrow on a fence.\nI hope this helps!',
     "bird", ["perched on a tree branch", "flying in the blue sky"]),
    # bullets without prefix
    ("- in the rain\n* with a bee on it.\n• 'growing in a garden'\n", "flower",
     ["in the rain", "with a bee on it", "growing in a garden"]),
    # markdown emphasis, "an", an adjective before the metaclass, bracketed numbering
    ("**Suffixes:**\n(1) **a photo of an aircraft parked on the runway.**\n"
     "(2) A photo of a large aircraft taking off from the runway.\n", "aircraft",
     ["parked on the runway", "taking off from the runway"]),
    # a reasoning model's thinking block, an alias of the metaclass's family, trailing chatter
    ("<think>The captions show dogs on beds and sofas. I'll list them.</think>\n"
     "a photo of a dog lying on a pillow on the floor.\na photo of a cat lying on a couch.\n"
     "These cover the most frequent contexts.", "pet",
     ["lying on a pillow on the floor", "lying on a couch"]),
    # prefix-less lines, an overlong line, an empty bullet and a code fence
    ("```\n- parked on a city street\n-\n- driving on a racing track at sunset with many spectators watching "
     "from the grandstands on both sides of the track on a warm summer day\n- parked on a city street.\n```",
     "car", ["parked on a city street"]),
]


@pytest.mark.parametrize("answer,metaclass,expected", REALISTIC_ANSWERS)
def test_parser_reads_realistic_answers(answer, metaclass, expected):
    assert parse_suffixes(answer, metaclass) == expected


def test_parser_stops_at_max_suffixes():
    answer = "\n".join(f"{i}. a photo of a bird {s}." for i, s in enumerate(
        ["on a branch", "in the sky", "on the grass", "in the water"], 1))
    assert parse_suffixes(answer, "bird", max_suffixes=2) == ["on a branch", "in the sky"]


@pytest.mark.parametrize("answer", [
    "",
    "Sure! Here are some suffixes:\n\nI hope this helps!",
    "1. a photo of a bird.\n2. A photo of a bird\n",
    "<think>captions are about birds</think>",
])
def test_parser_error_shows_the_raw_answer_and_the_fallback(answer):
    with pytest.raises(SuffixParseError) as info:
        parse_suffixes(answer, "bird")
    assert answer in str(info.value) and info.value.raw_answer == answer
    assert "fallback_to_builtin=True" in str(info.value)


# ---------------------------------------------------------------- built-in and user lists

def _tokenizer_with_concepts(n_tokens=4):
    tokenizer = tiny_clip_tokenizer()
    tokens = [f"<class_0_{i}>" for i in range(n_tokens)]
    tokenizer.add_tokens(tokens)
    return tokenizer, " ".join(tokens)


@pytest.mark.parametrize("family", [*BUILTIN_FAMILIES, GENERIC_FAMILY])
def test_builtin_lists_are_short_normalised_and_fit_the_clip_context(family):
    suffixes = BuiltinSuffixes(family).suffixes([], family)
    assert 5 <= len(suffixes) <= 10 and len(set(suffixes)) == len(suffixes)
    assert suffixes == builtin_suffixes(family)  # already normalised in the file
    tokenizer, tokens = _tokenizer_with_concepts(4)
    prompts = [build_prompt(tokens, family, s) for s in suffixes]
    for prompt, suffix in zip(prompts, suffixes):
        assert prompt == f"a photo of a {tokens} {family} {suffix}."
        assert "  " not in prompt and ".." not in prompt and " ." not in prompt
    counts = check_prompt_length(tokenizer, prompts)
    assert max(counts) <= 77 and len(counts) == len(prompts)


@pytest.mark.parametrize("metaclass,family", [
    ("bird", "bird"), ("birds", "bird"), ("airplane", "aircraft"), ("plane", "aircraft"), ("sports car", "car"),
    ("pet", "animal"), ("dog", "animal"), ("cats", "animal"), ("flower", "flower"), ("shape", GENERIC_FAMILY),
    ("carpet", GENERIC_FAMILY),
])
def test_family_is_chosen_from_the_metaclass(metaclass, family):
    assert family_for_metaclass(metaclass) == family


def test_builtin_without_family_logs_the_list_it_chose(caplog):
    with caplog.at_level(logging.INFO, logger="diffii_datasets.diffusion.suffixes"):
        shapes = suffix_provider("builtin").suffixes([], "shape")
    assert shapes == builtin_suffixes(GENERIC_FAMILY) and "in a natural setting" in shapes
    assert "generic" in caplog.text and "'shape'" in caplog.text
    assert suffix_provider("builtin").suffixes([], "airplane") == builtin_suffixes("aircraft")
    assert suffix_provider("builtin:plane").spec() == "builtin:aircraft"


def test_user_file_skips_blank_lines_and_comments_and_normalises(tmp_path, caplog):
    path = tmp_path / "mine.txt"
    path.write_text("# my suffixes\n\n  perched on a fence.  \n\"A photo of a bird in the snow.\"\n"
                    "   # indented comment\nperched on a fence\n", encoding="utf-8")
    provider = suffix_provider(f"file:{path}")
    with caplog.at_level(logging.WARNING):
        assert provider.suffixes([], "bird") == ["perched on a fence", "in the snow"]
    assert "duplicate" in caplog.text
    # the spec is the file's content: it round-trips and a cache keyed on it notices edits
    assert provider.spec() == ["perched on a fence.", '"A photo of a bird in the snow."', "perched on a fence"]
    assert suffix_provider(provider.spec()).suffixes([], "bird") == ["perched on a fence", "in the snow"]


def test_user_list_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty list"):
        suffix_provider([])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        suffix_provider(f"file:{tmp_path / 'missing.txt'}")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no suffix"):
        UserSuffixes.from_file(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="empty once"):
        UserSuffixes(["a photo of a bird."]).suffixes([], "bird")
    with pytest.raises(TypeError, match="list of strings"):
        UserSuffixes(["ok", 3])


@pytest.mark.parametrize("spec,message", [
    ("nope", "unknown suffix spec 'nope'; valid forms: 'builtin', 'builtin:<family>'.*'file:<path>'.*'captioned'"),
    ("file:", "unknown suffix spec 'file:'"),
    ("builtin:fish", "unknown built-in suffix family 'fish'; expected one of aircraft, animal, bird, car"),
    ("captioned:foo=1", r"unknown captioned option\(s\) \['foo'\]"),
    ("captioned:{not json", "not valid JSON"),
    ("captioned:summariser=gpt", "summariser must be 'llm', 'llm:<model id or dir>', 'openai:<model>'"),
    ("captioned:max_suffixes=0", "max_suffixes must be a positive int, got 0"),
    ("captioned:fallback_to_builtin=maybe", "fallback_to_builtin must be true or false"),
])
def test_bad_specs_are_rejected_with_what_was_expected(spec, message):
    with pytest.raises(ValueError, match=message):
        suffix_provider(spec)
    with pytest.raises(TypeError, match="spec string, a list of strings or a SuffixProvider"):
        suffix_provider(3)


def test_captioned_specs_round_trip():
    provider = suffix_provider("captioned:summariser=extractive,max_suffixes=5,fallback_to_builtin=true")
    assert isinstance(provider.summariser, ExtractiveSummariser) and provider.max_suffixes == 5
    assert provider.fallback_to_builtin is True
    assert suffix_provider(provider.spec()).spec() == provider.spec()
    default = suffix_provider("captioned")
    assert isinstance(default.summariser, LocalLLMSummariser)
    assert json.loads(default.spec().partition(":")[2]) == {
        "captioner": "Salesforce/blip-image-captioning-large", "fallback_to_builtin": False, "max_suffixes": 10,
        "summariser": "llm:Qwen/Qwen2.5-1.5B-Instruct"}
    openai = suffix_provider('captioned:{"summarizer": "openai:gpt-4o-mini"}')
    assert isinstance(openai.summariser, OpenAICompatibleSummariser) and openai.summariser.model == "gpt-4o-mini"


def test_overlong_suffix_is_an_error_naming_the_prompt():
    tokenizer, tokens = _tokenizer_with_concepts(4)
    long_suffix = "standing on a tree branch " * 14
    with pytest.raises(ValueError, match=r"exceed the text encoder's context of 77 tokens.*\(\d+ tokens\)"):
        check_prompt_length(tokenizer, [build_prompt(tokens, "bird", "in the sky"),
                                        build_prompt(tokens, "bird", long_suffix)])
    prompt = build_prompt(tokens, "bird", "in the sky")
    (count,) = check_prompt_length(tokenizer, [prompt])
    assert check_prompt_length(tokenizer, [prompt], max_length=count) == [count]
    with pytest.raises(ValueError):
        check_prompt_length(tokenizer, [prompt], max_length=count - 1)


# ---------------------------------------------------------------- extractive summariser

BIRD_CAPTIONS = [
    "arafed bird sitting on a branch of a tree",
    "there is a small bird that is sitting on a branch",
    "a bird sitting on a branch in a tree",
    "a close up of a bird flying in the sky",
    "a seagull flying in the sky with a blue background",
    "a duck swimming in the water",
    "there is a duck that is swimming in the water",
    "a bird standing on the grass",
    "a bird with a red head standing on the grass",
    "a bird with a yellow belly",
    "a painting of a bird",
]

FLOWER_CAPTIONS = [
    "a pink flower with water droplets on it",
    "a close up of a flower with water droplets on it",
    "a yellow flower with a bee on it",
    "arafed flower with a bee on it",
    "a white flower in a garden",
    "a purple flower in a garden with green leaves",
    "a red flower in a vase on a table",
    "a pink flower with a yellow center",
    "there is a bee on a yellow flower",
]

CAR_CAPTIONS = [
    "a red car parked on the side of the road",
    "a silver car parked on the side of the road",
    "a black sports car driving down a road",
    "a blue car driving down a road next to a forest",
    "a white car parked in a parking lot",
    "a car parked in a parking lot with other cars",
    "there is a car that is parked in a parking lot",
    "a close up of a car with a license plate",
]


@pytest.mark.parametrize("captions,metaclass,expected", [
    (BIRD_CAPTIONS, "bird", ["sitting on a branch", "flying in the sky", "standing on the grass",
                             "swimming in the water"]),
    (FLOWER_CAPTIONS, "flower", ["with a bee on it", "with water droplets on it", "in a garden"]),
    (CAR_CAPTIONS, "car", ["parked in a parking lot", "parked on the side of the road", "driving down a road"]),
])
def test_extractive_summariser_finds_the_recurring_context(captions, metaclass, expected):
    suffixes, report = ExtractiveSummariser().summarise(captions, metaclass, max_suffixes=10)
    assert suffixes == expected
    assert suffixes[0] in report
    assert ExtractiveSummariser().summarise(captions, metaclass, max_suffixes=2)[0] == expected[:2]


def test_extractive_summariser_without_recurring_phrase_is_a_clear_error():
    with pytest.raises(SuffixParseError, match="no context phrase recurs at least 2 times"):
        ExtractiveSummariser().summarise(["a bird on a branch", "a painting of a bird"], "bird", 10)


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
    assert not list(cache.glob("*.tmp"))

    # A second run, rebuilt from the spec, with the models gone: served from the cache, no captioning.
    shutil.rmtree(blip)
    shutil.rmtree(llama)
    again = suffix_provider(provider.spec())
    with caplog.at_level(logging.INFO, logger="diffii_datasets.diffusion.suffixes"):
        assert again.suffixes(list(images), "bird", cache_dir=cache) == suffixes
    assert "cached suffixes" in caplog.text and "captioning" not in caplog.text
    # Other images are another key: they need the (deleted) captioner.
    with pytest.raises(OSError):
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


def test_language_model_summariser_with_only_empty_captions_offers_the_fallback():
    with pytest.raises(SuffixParseError, match="every caption is empty.*fallback_to_builtin=True"):
        OpenAICompatibleSummariser("m").summarise(["", "  "], "bird", 3)
