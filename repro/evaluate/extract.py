"""Rule-based answer extraction for the helpfulness benchmarks (no judge model).

``extract_option`` (extractor ``vlmevalkit``, the default for MMBench and SEED-Bench) reads an
answer as VLMEvalKit's ``can_infer`` does under its ``exact_matching`` policy
(``open-compass/VLMEvalKit`` ``vlmeval/utils/matching_util.py`` and
``vlmeval/dataset/utils/multiple_choice.py`` ``extract_answer_from_item``, at the 2024 commit
``9726f414`` pinned in docs/protocol-choices.md):

  1. ``can_infer_option``: a reply containing one of VLMEvalKit's "cannot answer" phrases is
     ``Z`` (no answer). Otherwise the characters ``.()[],:;!*#{}`` become spaces, the reply is
     split on whitespace, and if exactly one option letter (upper case, as a whole token) is
     among the tokens, that is the answer; with none, a lone ``Z`` token means no answer.
  2. ``can_infer_text``: the lower-cased option texts found (as substrings) in the lower-cased
     reply; exactly one found is the answer (reported as a fallback match).
  3. Nothing inferred: ``Z`` (VLMEvalKit asks ChatGPT here; under ``exact_matching`` it gives
     ``Z``). ``Z`` is never right.

``extract_exact`` (extractor ``llava_exact``, SEED-Bench's alternative): LLaVA's
``scripts/convert_seed_for_submission.py`` counts an answer right only if the stripped reply is
the answer letter itself.

``extract_yes_no`` follows MME's own rule: "yes"/"no" as the whole answer, otherwise whichever of
"yes"/"no" appears in its first four characters; anything else is neither (scored wrong).
"""

from __future__ import annotations

import hashlib
import inspect

_PUNCT = " \t\n.,;:!?\"'`()[]{}*"
NO_ANSWER = "Z"
API_FAILURE = "Failed to obtain answer via API"
CANNOT_ANSWER = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
                 "I'm sorry, but without the image provided", "Cannot determine the answer")
SEPARATORS = ".()[],:;!*#{}"


def infer_option(answer: str, options: dict[str, str]) -> str | None:
    """VLMEvalKit ``can_infer_option``: an option letter, ``Z`` (no answer) or None."""
    if API_FAILURE in answer:
        return None
    if any(phrase in answer for phrase in CANNOT_ANSWER):
        return NO_ANSWER
    tokens = answer.translate(str.maketrans(SEPARATORS, " " * len(SEPARATORS))).split()
    found = [letter for letter in options if letter in tokens]
    if len(found) == 1:
        return found[0]
    if not found and NO_ANSWER in tokens:
        return NO_ANSWER
    return None


def infer_text(answer: str, options: dict[str, str]) -> str | None:
    """VLMEvalKit ``can_infer_text``: the one option whose text occurs in the answer, or None."""
    reply = answer.lower()
    found = [letter for letter, text in options.items() if str(text).lower() in reply]
    return found[0] if len(found) == 1 else None


def extract_option(answer: str, options: dict[str, str]) -> tuple[str | None, str]:
    """``(letter, method)``: method "letter", "option_text" (fallback), "refused" (``Z``) or
    "none" (nothing inferred; VLMEvalKit's ``Z``). The letter is None unless it is an option."""
    answer = str(answer)
    letter = infer_option(answer, options)
    if letter == NO_ANSWER:
        return None, "refused"
    if letter:
        return letter, "letter"
    letter = infer_text(answer, options)
    return (letter, "option_text") if letter else (None, "none")


def extract_exact(answer: str, options: dict[str, str]) -> tuple[str | None, str]:
    """LLaVA's SEED-Bench scoring: the reply must be the letter itself."""
    reply = str(answer).strip()
    return (reply, "exact") if reply in options else (None, "none")


EXTRACTORS = {"vlmevalkit": extract_option, "llava_exact": extract_exact}


def extract_yes_no(answer: str) -> str | None:
    """"Yes", "No" or None (MME's rule: whole answer, else the first four characters)."""
    text = answer.replace("</s>", " ").strip().lower()
    bare = text.strip(_PUNCT)
    if bare in ("yes", "no"):
        return bare.capitalize()
    prefix = text[:4]
    if "yes" in prefix:
        return "Yes"
    if "no" in prefix:
        return "No"
    return None


def extractor_sha256(*functions) -> str:
    """sha256 over the extractors' source: any change to the rules changes the recorded value."""
    helpers = (infer_option, infer_text) if extract_option in functions else ()
    source = "".join(inspect.getsource(f) for f in (*functions, *helpers))
    return hashlib.sha256(source.encode()).hexdigest()
