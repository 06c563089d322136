"""Suffix providers for two-stage denoising: built-in lists, user lists, captioned.

Diff-II's first denoising stage uses ``"a photo of a <tokens> <metaclass> <suffix>."``
where the suffix is a context phrase ("standing on a tree branch") summarised from
captions of the training images (paper section 3.3). A provider returns such
phrases *normalised*: no ``"a photo of a <metaclass>"`` prefix, no surrounding
space, no final period; :func:`~diffii_datasets.diffusion.prompts.build_prompt`
adds the one space and the one period.

Three providers, selected with :func:`suffix_provider` (``spec``):

* ``"builtin"`` / ``"builtin:<family>"``: the lists shipped in
  ``diffii_datasets/data/suffixes`` (bird, aircraft, car, animal, flower and a
  generic list for any other metaclass) (``lists``, ``families``).
* a list or tuple of strings, or ``"file:<path>"``: the user's own phrases (``lists``).
* ``"captioned"`` / ``"captioned:<options>"``: caption every training image
  (BLIP by default, ``captioning``), then summarise the captions into at most N
  phrases (``captioned``) with a local instruction-tuned language model
  (``local_llm``), an OpenAI-compatible endpoint (``openai_compatible``) or the
  LLM-free :class:`ExtractiveSummariser` (``extractive``); a language model's
  answer is read by ``parsing``. Captions and suffixes are cached as JSON under
  ``cache_dir``, keyed by the images' fingerprint and the model ids.

Names load lazily; building a provider from a spec imports no torch, transformers
or imaging library (models load only when captions or summaries are computed).
"""

from diffii_datasets._lazy import lazy_exports

_P = "diffii_datasets.diffusion.suffixes."
_EXPORTS = {
    "SuffixParseError": _P + "provider",
    "SuffixProvider": _P + "provider",
    "BUILTIN_FAMILIES": _P + "families",
    "GENERIC_FAMILY": _P + "families",
    "family_for_metaclass": _P + "families",
    "BuiltinSuffixes": _P + "lists",
    "UserSuffixes": _P + "lists",
    "builtin_suffixes": _P + "lists",
    "read_suffix_file": _P + "lists",
    "parse_suffixes": _P + "parsing",
    "summarisation_prompt": _P + "parsing",
    "Summariser": _P + "summariser",
    "DEFAULT_SUMMARISER": _P + "local_llm",
    "LocalLLMSummariser": _P + "local_llm",
    "API_BASE_ENV": _P + "openai_compatible",
    "API_KEY_ENV": _P + "openai_compatible",
    "OpenAICompatibleSummariser": _P + "openai_compatible",
    "ExtractiveSummariser": _P + "extractive",
    "summariser_from_spec": _P + "summariser_spec",
    "DEFAULT_CAPTIONER": _P + "captioning",
    "Captioner": _P + "captioning",
    "CaptionedSuffixes": _P + "captioned",
    "suffix_provider": _P + "spec",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
