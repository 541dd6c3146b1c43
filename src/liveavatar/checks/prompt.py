"""Prompt checks: length, vague words, contradictions, missing elements, language.

Word lists, not a language model: every finding names the words it matched, so a user can see
why it fired. The lists are in this module and documented in docs/checks.md.
"""

from __future__ import annotations

import re

from liveavatar.checks.findings import Finding

MIN_WORDS, MAX_WORDS = 100, 200
VAGUE = frozenset(
    "nice beautiful pretty good great amazing awesome lovely cool stunning gorgeous wonderful fantastic "
    "perfect interesting attractive stuff things something somehow whatever".split()
)
# (name, one side, the other side): both sides present (not negated) is a contradiction
OPPOSITES: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    (
        "happy vs sad",
        frozenset("happy joyful cheerful laughing laughs laugh delighted elated gleeful".split()),
        frozenset("sad sorrowful crying cries tearful depressed gloomy miserable grieving mournful unhappy".split()),
    ),
    (
        "calm vs agitated",
        frozenset("calm calmly relaxed serene peaceful composed tranquil".split()),
        frozenset("angry furious agitated enraged frantic shouting yelling screaming panicked".split()),
    ),
    (
        "smiling vs frowning",
        frozenset("smiling smiles smile grinning grin".split()),
        frozenset("frowning frowns frown scowling scowl".split()),
    ),
    (
        "day vs night",
        frozenset("daytime daylight sunny midday noon morning".split()),
        frozenset("night nighttime midnight moonlit".split()),
    ),
    ("indoors vs outdoors", frozenset("indoors indoor inside".split()), frozenset("outdoors outdoor outside".split())),
    ("standing vs sitting", frozenset("standing stands".split()), frozenset("sitting sits seated".split())),
)
NEGATIONS = frozenset("not no never without nor isn't aren't doesn't don't".split())
ELEMENTS: dict[str, frozenset[str]] = {
    "character": frozenset(
        "man woman person girl boy lady gentleman he she child elderly young old teenager adult male female "
        "hair beard wearing dressed shirt suit jacket dress eyes face character chef scientist teacher".split()
    ),
    "action": frozenset(
        "speaking talking smiling gesturing nodding looking sitting standing singing explaining laughing "
        "presenting telling saying speaks talks smiles gestures nods looks sits stands sings explains "
        "expression expressive pose posture emotion".split()
    ),
    "environment": frozenset(
        "background room office studio kitchen street outdoors indoors forest city beach garden lighting "
        "light lit sunlight window library classroom stage setting scene workshop field interior".split()
    ),
    "style": frozenset(
        "style cinematic realistic photorealistic photograph photo film movie animation animated anime "
        "cartoon 3d render rendered painting illustration depth lens shot camera close-up closeup portrait "
        "aesthetic documentary".split()
    ),
}
ENGLISH_COMMON = frozenset(
    "the a an and of in on with is are to her his their she he it at while as by for from this that "
    "wearing into over under behind".split()
)


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*|\d+d", text.lower())


def _present(tokens: list[str], vocab: frozenset[str]) -> list[str]:
    """Words of ``vocab`` in ``tokens`` that are not negated by one of the two words before."""
    found = []
    for i, t in enumerate(tokens):
        if t in vocab and not any(p in NEGATIONS for p in tokens[max(0, i - 2) : i]):
            found.append(t)
    return found


def _f(severity: str, code: str, message: str, measured: object, expected: object, fix: str) -> Finding:
    return Finding("prompt", severity, code, message, measured, expected, fix)


def check_prompt(text: str) -> list[Finding]:
    tokens = words(text)
    n = len(tokens)
    out: list[Finding] = []
    letters = [c for c in text if c.isalpha()]
    latin = sum(c.isascii() for c in letters) / len(letters) if letters else 1.0
    common = sum(t in ENGLISH_COMMON for t in tokens) / n if n else 1.0
    if letters and (latin < 0.9 or (n >= 8 and common < 0.08)):
        out.append(
            _f(
                "warning",
                "prompt.language",
                "the prompt does not look like English",
                {"ascii_letters": round(latin, 2), "common_english_words": round(common, 2)},
                "English",
                "write the prompt in English: the text encoder was tuned on English prompts",
            )
        )
    if n < MIN_WORDS or n > MAX_WORDS:
        why = (
            "too short to describe character, action, scene and style"
            if n < MIN_WORDS
            else "long prompts lose information"
        )
        out.append(
            _f(
                "warning",
                "prompt.length",
                f"the prompt has {n} word{'' if n == 1 else 's'}: {why}",
                n,
                f"{MIN_WORDS}-{MAX_WORDS} words",
                "describe the character, action, environment and style in 100-200 words; start from a template that worked",
            )
        )
    vague = sorted(set(_present(tokens, VAGUE)))
    if vague:
        out.append(
            _f(
                "warning",
                "prompt.vague",
                f"vague words: {', '.join(vague)}",
                vague,
                "concrete descriptions",
                'replace them with what you see, e.g. "long black hair, soft window light" instead of "beautiful"',
            )
        )
    clashes = []
    for name, one, other in OPPOSITES:
        a, b = _present(tokens, one), _present(tokens, other)
        if a and b:
            clashes.append(f"{name} ({a[0]} / {b[0]})")
    if clashes:
        out.append(
            _f(
                "warning",
                "prompt.contradiction",
                f"the prompt contradicts itself: {'; '.join(clashes)}",
                clashes,
                "no contradictions",
                "keep one mood, time and setting per prompt",
            )
        )
    if n:
        missing = [name for name, vocab in ELEMENTS.items() if not set(tokens) & vocab]
        if missing:
            out.append(
                _f(
                    "warning",
                    "prompt.missing_elements",
                    f"the prompt does not describe: {', '.join(missing)}",
                    missing,
                    list(ELEMENTS),
                    "cover the character (gender, age, hair, clothing), the action and emotion, the environment and lighting, and an art style",
                )
            )
    return out
