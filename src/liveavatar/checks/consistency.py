"""Do the inputs agree? The voice's pitch against the prompt's gender words, and the speech's
liveliness against the prompt's emotion words.

Not checked: the portrait's apparent gender, age or emotion. No offline model in this install
can judge them, so the image takes no part here (see docs/checks.md).
"""

from __future__ import annotations

from liveavatar.checks.findings import Finding
from liveavatar.checks.prompt import _present, words
from liveavatar.checks.speech import SpeechStats

MALE_WORDS = frozenset(
    "man men male gentleman boy guy father grandfather husband he him his beard bearded king".split()
)
FEMALE_WORDS = frozenset("woman women female lady girl mother grandmother wife she her hers queen".split())
# Typical adult speaking F0: men about 85-155 Hz, women about 165-255 Hz.
MALE_MAX_F0, FEMALE_MIN_F0 = 155.0, 165.0
# Tolerance so that a low female or a high male voice does not fire
FEMALE_PROMPT_LOW_F0, MALE_PROMPT_HIGH_F0 = 150.0, 175.0
LIVELY_WORDS = frozenset(
    "laughing laughs laugh heartily excited excitedly enthusiastic enthusiastically energetic energetically "
    "cheerful cheerfully joyful shouting yelling animated exuberant thrilled passionate passionately".split()
)
SUBDUED_WORDS = frozenset(
    "calm calmly serious seriously solemn somber sombre quiet quietly whispering softly gently sad tired monotone".split()
)
FLAT_SEMITONES = 2.0  # 10-90% F0 range below this is flat, monotonous speech
LIVELY_SEMITONES = 12.0  # above an octave is very animated speech


def _f(severity: str, code: str, message: str, measured: object, expected: object, fix: str) -> Finding:
    return Finding("consistency", severity, code, message, measured, expected, fix)


def check_consistency(prompt: str, stats: SpeechStats) -> list[Finding]:
    tokens = words(prompt)
    out: list[Finding] = []
    if stats.f0_median_hz <= 0:
        return out
    f0 = stats.f0_median_hz
    male, female = set(_present(tokens, MALE_WORDS)), set(_present(tokens, FEMALE_WORDS))
    if female and not male and f0 < FEMALE_PROMPT_LOW_F0:
        out.append(
            _f(
                "warning",
                "consistency.voice_gender",
                f"the prompt describes a woman ({', '.join(sorted(female))}) but the voice's median pitch is {f0:.0f} Hz, typical of a man",
                round(f0, 1),
                f">= {FEMALE_PROMPT_LOW_F0:.0f} Hz for a typical female voice",
                "make the prompt, the portrait and the voice describe the same person",
            )
        )
    elif male and not female and f0 > MALE_PROMPT_HIGH_F0:
        out.append(
            _f(
                "warning",
                "consistency.voice_gender",
                f"the prompt describes a man ({', '.join(sorted(male))}) but the voice's median pitch is {f0:.0f} Hz, typical of a woman or child",
                round(f0, 1),
                f"<= {MALE_PROMPT_HIGH_F0:.0f} Hz for a typical male voice",
                "make the prompt, the portrait and the voice describe the same person",
            )
        )
    lively, subdued = _present(tokens, LIVELY_WORDS), _present(tokens, SUBDUED_WORDS)
    spread = stats.f0_spread_semitones
    if lively and spread < FLAT_SEMITONES:
        out.append(
            _f(
                "warning",
                "consistency.emotion",
                f"the prompt asks for lively emotion ({', '.join(sorted(set(lively)))}) but the speech is flat (pitch moves {spread:.1f} semitones)",
                round(spread, 2),
                f">= {FLAT_SEMITONES} semitones of pitch movement",
                'describe the tone the audio really has (e.g. "speaking calmly"), or record livelier speech',
            )
        )
    elif subdued and not lively and spread > LIVELY_SEMITONES:
        out.append(
            _f(
                "warning",
                "consistency.emotion",
                f"the prompt asks for a subdued tone ({', '.join(sorted(set(subdued)))}) but the speech is very animated (pitch moves {spread:.1f} semitones)",
                round(spread, 2),
                f"<= {LIVELY_SEMITONES} semitones of pitch movement",
                'describe the tone the audio really has (e.g. "speaking enthusiastically")',
            )
        )
    return out
