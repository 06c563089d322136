"""Built-in and user suffix lists, provider specs, and the prompts the lists make fitting the text encoder."""

from __future__ import annotations

import json
import logging

import pytest

from diffii_datasets.diffusion.prompts import build_prompt, check_prompt_length
from diffii_datasets.diffusion.suffixes import (
    BUILTIN_LISTS,
    GENERIC_LIST,
    BuiltinSuffixes,
    CaptionedSuffixes,
    ExtractiveSummariser,
    LocalLLMSummariser,
    OpenAICompatibleSummariser,
    UserSuffixes,
    builtin_suffixes,
    list_for_metaclass,
    suffix_provider,
)
from diffii_datasets.testing import tiny_clip_tokenizer


# ---------------------------------------------------------------- built-in and user lists

def _tokenizer_with_concepts(n_tokens=4):
    tokenizer = tiny_clip_tokenizer()
    tokens = [f"<class_0_{i}>" for i in range(n_tokens)]
    tokenizer.add_tokens(tokens)
    return tokenizer, " ".join(tokens)


@pytest.mark.parametrize("family", [*BUILTIN_LISTS, GENERIC_LIST])
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
    ("pet", "animal"), ("dog", "animal"), ("cats", "animal"), ("flower", "flower"), ("shape", GENERIC_LIST),
    ("carpet", GENERIC_LIST),
])
def test_family_is_chosen_from_the_metaclass(metaclass, family):
    assert list_for_metaclass(metaclass) == family


def test_builtin_without_family_logs_the_list_it_chose(caplog):
    with caplog.at_level(logging.INFO, logger="diffii_datasets.diffusion.suffixes"):
        shapes = suffix_provider("builtin").suffixes([], "shape")
    assert shapes == builtin_suffixes(GENERIC_LIST) and "in a natural setting" in shapes
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
    ("nope", "unknown suffix spec 'nope'; valid forms: 'builtin', 'builtin:<list>'.*'file:<path>'.*'captioned'"),
    ("file:", "unknown suffix spec 'file:'"),
    ("builtin:fish", "unknown built-in suffix list 'fish'; expected one of aircraft, animal, bird, car"),
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


def test_tuples_are_accepted_wherever_a_list_is():
    provider = suffix_provider(("perched on a fence.", "in the snow"))
    assert isinstance(provider, UserSuffixes) and provider.spec() == ["perched on a fence.", "in the snow"]
    assert provider.suffixes((), "bird") == ["perched on a fence", "in the snow"]
    assert UserSuffixes(("in the snow",)).suffixes([], "bird") == ["in the snow"]
    assert suffix_provider(tuple(provider.spec())).spec() == provider.spec()


def test_a_wrong_type_is_a_type_error_and_a_wrong_value_a_value_error():
    with pytest.raises(TypeError, match="suffixes must be a non-empty list of strings, none blank, got tuple"):
        suffix_provider(("ok", 3))
    with pytest.raises(TypeError, match="suffixes must be a non-empty list of strings"):
        UserSuffixes("in the snow")
    with pytest.raises(ValueError, match="suffixes must be a non-empty list of strings, none blank, got"):
        UserSuffixes(["ok", "  "])
    with pytest.raises(TypeError, match="max_suffixes must be a positive int, got str '3'"):
        CaptionedSuffixes(summariser="extractive", max_suffixes="3")
    with pytest.raises(TypeError, match="fallback_to_builtin must be a bool"):
        CaptionedSuffixes(summariser="extractive", fallback_to_builtin="yes")
    with pytest.raises(TypeError, match="captioner must be a model id, a directory or a Captioner, got int"):
        CaptionedSuffixes(3, "extractive")
    with pytest.raises(TypeError, match="summariser must be a Summariser or one of 'llm'"):
        CaptionedSuffixes(summariser=3)
