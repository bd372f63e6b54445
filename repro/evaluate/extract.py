"""Rule-based answer extraction for the helpfulness benchmarks (no judge model).

``extract_option`` maps a free-form answer to an option letter, in this order:
  1. the whole answer is one option letter, optionally in brackets/with punctuation ("b", "(B).")
  2. a letter that opens the answer followed by ".", ")" or ":" ("B. cat", "C) ...")
  3. "answer is X" / "answer: (X)" / "option X" phrasing ("The answer is (B).")
  4. exactly one bracketed letter "(X)" anywhere
  5. fallback: the answer equals, or contains exactly one of, the option texts ("cat")
Only letters among the item's options count. Method 5 is reported as a fallback match and counted,
since it can move MMBench scores (CONVENTIONS: extraction moves MMBench numbers).

``extract_yes_no`` follows MME's own rule: "yes"/"no" as the whole answer, otherwise whichever of
"yes"/"no" appears in its first four characters; anything else is neither (scored wrong).
"""

from __future__ import annotations

import hashlib
import inspect
import re

_PUNCT = " \t\n.,;:!?\"'`()[]{}*"


def _letter_patterns(letters: str) -> tuple[re.Pattern, list[re.Pattern]]:
    """(pattern anchored at the start, patterns searched anywhere); the letter itself is upper case."""
    cls = f"[{letters}]"
    opening = re.compile(rf"^\s*[\(\[]?({cls})[\)\]]?\s*[\.\):]")  # "B. cat", "(B) cat", "B) cat"
    anywhere = [
        re.compile(rf"(?i:\banswer\b)\s*(?i:is\b)?\s*:?\s*(?i:option\s*)?[\(\[]?({cls})\b"),
        re.compile(rf"(?i:\boption\b)\s*(?i:is\b)?\s*:?\s*[\(\[]?({cls})\b"),
    ]
    return opening, anywhere


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip(_PUNCT)


def extract_option(answer: str, options: dict[str, str]) -> tuple[str | None, str]:
    """``(letter, method)``; method is "letter", "option_text" (fallback) or "none"."""
    text = answer.replace("</s>", " ").strip()
    letters = "".join(sorted(options))
    if not text or not letters:
        return None, "none"
    bare = text.strip(_PUNCT)
    if len(bare) == 1 and bare.upper() in options:
        return bare.upper(), "letter"
    opening, anywhere = _letter_patterns(letters)
    match = opening.match(text) or next((m for p in anywhere if (m := p.search(text))), None)
    if match:
        return match.group(1), "letter"
    bracketed = set(re.findall(rf"[\(\[]([{letters}])[\)\]]", text))
    if len(bracketed) == 1:
        return bracketed.pop(), "letter"
    return _match_option_text(text, options)


def _match_option_text(text: str, options: dict[str, str]) -> tuple[str | None, str]:
    norm = _norm_text(text)
    texts = {k: _norm_text(v) for k, v in options.items() if _norm_text(v)}
    exact = [k for k, v in texts.items() if v == norm]
    if len(exact) == 1:
        return exact[0], "option_text"
    contained = [k for k, v in texts.items() if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", norm)]
    if len(contained) == 1:
        return contained[0], "option_text"
    return None, "none"


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
    source = "".join(inspect.getsource(f) for f in functions)
    source += "".join(inspect.getsource(f) for f in (_letter_patterns, _match_option_text, _norm_text))
    return hashlib.sha256(source.encode()).hexdigest()
