"""Reading summaries: a language model's answer parsed into suffixes, and the LLM-free extractive summariser."""

from __future__ import annotations

import pytest

from diffii_datasets.diffusion.suffixes import (
    ExtractiveSummariser,
    OpenAICompatibleSummariser,
    SuffixParseError,
    parse_suffixes,
)

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


def test_language_model_summariser_with_only_empty_captions_offers_the_fallback():
    with pytest.raises(SuffixParseError, match="every caption is empty.*fallback_to_builtin=True"):
        OpenAICompatibleSummariser("m").summarise(["", "  "], "bird", 3)
