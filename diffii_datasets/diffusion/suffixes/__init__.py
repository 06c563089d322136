"""Suffix providers for two-stage denoising: built-in lists, user lists, captioned.

Diff-II's first denoising stage uses ``"a photo of a <tokens> <metaclass> <suffix>."``
where the suffix is a context phrase ("standing on a tree branch") summarised from
captions of the training images (paper section 3.3). A provider returns such
phrases *normalised*: no ``"a photo of a <metaclass>"`` prefix, no surrounding
space, no final period; :func:`~diffii_datasets.diffusion.prompts.build_prompt`
adds the one space and the one period.

Three providers, selected with :func:`suffix_provider` (``spec``):

* ``"builtin"`` / ``"builtin:<list>"``: the lists shipped in
  ``diffii_datasets/data/suffixes`` (bird, aircraft, car, animal, flower and a
  generic list for any other metaclass) (``lists``, ``builtin_lists``).
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
    _P + "provider": ("SuffixParseError", "SuffixProvider"),
    _P + "builtin_lists": ("BUILTIN_LISTS", "GENERIC_LIST", "list_for_metaclass"),
    _P + "lists": ("BuiltinSuffixes", "UserSuffixes", "builtin_suffixes", "read_suffix_file"),
    _P + "parsing": ("parse_suffixes", "summarisation_prompt"),
    _P + "summariser": ("Summariser",),
    _P + "local_llm": ("DEFAULT_SUMMARISER", "LocalLLMSummariser"),
    _P + "openai_compatible": ("API_BASE_ENV", "API_KEY_ENV", "OpenAICompatibleSummariser"),
    _P + "extractive": ("ExtractiveSummariser",),
    _P + "summariser_spec": ("summariser_from_spec",),
    _P + "captioning": ("DEFAULT_CAPTIONER", "Captioner"),
    _P + "captioned": ("CaptionedSuffixes",),
    _P + "spec": ("suffix_provider",),
}
_MOVED = {"BUILTIN_FAMILIES": _P + "builtin_lists:BUILTIN_LISTS", "GENERIC_FAMILY": _P + "builtin_lists:GENERIC_LIST",
          "family_for_metaclass": _P + "builtin_lists:list_for_metaclass"}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, _MOVED)
