"""Every tuning constant of the preview engine (rendering and motion), in one place.

The defaults are what docs/preview.md describes and the corpus measures were taken with; a test or a
study can build a ``PreviewStyle`` with other values and hand it to the ``Renderer``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Prompt words that change the motion: (words, (head motion, nods, mouth) multipliers); docs/preview.md.
PROMPT_CUES: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("calm calmly relaxed gentle gently soft softly serene quiet quietly peaceful composed", (0.6, 0.6, 0.85)),
    ("still motionless steady", (0.3, 0.4, 1.0)),
    ("serious stern formal", (0.7, 0.7, 0.95)),
    (
        "enthusiastic enthusiastically excited excitedly energetic lively animated passionate passionately cheerful joyful expressive",
        (1.6, 1.5, 1.15),
    ),
    ("nod nods nodding", (1.0, 2.0, 1.0)),
    ("whisper whispers whispering murmuring", (0.7, 0.7, 0.7)),
    ("shout shouts shouting yelling loud loudly", (1.3, 1.4, 1.25)),
    ("singing sings", (1.2, 1.0, 1.1)),
)


@dataclass(frozen=True)
class PreviewStyle:
    # Mouth opening: the warp is sampled at `jaw_levels` openings and interpolated per frame.
    jaw_levels: int = 9
    max_gap: float = 0.32  # widest inner-lip gap at the mouth's centre, / mouth width
    min_extra_gap: float = 0.24  # a portrait resting with parted lips (a smile) still opens this much more at full
    lower_share: float = 0.85  # share of the opening made by the lower lip (the jaw); the rest by the upper lip
    chin_follow: float = 0.6  # how much the chin and cheeks below the mouth follow the lower lip
    chin_blend: float = (
        0.12  # below the lower lip the skin blends from the lip's motion to the chin's over this, / face height
    )
    corner_follow: float = 0.2  # the mouth corners follow this share of the lower lip's motion at the centre
    # Jaw-only mode (the mouth's landmarks are not trusted): the lower face stretches down by at most
    # this share of the face height, lips untouched, nothing painted.
    jaw_only_drop: float = 0.035
    # Lip spread / rounding at full amount, / mouth width (lips; then the skin around them).
    spread_lips: float = 0.07
    spread_skin: float = 0.035
    # Blinks: closure sampled at these levels; the upper lid makes `upper_lid_share` of the motion.
    blink_levels: tuple[float, ...] = (0.0, 0.5, 1.0)
    upper_lid_share: float = 0.85
    # The box around the head that is warped (face widths / heights from the face's centre).
    box_side: float = 1.15
    box_up: float = 1.45
    box_down: float = 1.25
    # Mouth interior, when the portrait shows none of its own (RGB at a skin brightness of 170).
    cavity_top: tuple[float, float, float] = (58.0, 22.0, 26.0)
    cavity_bottom: tuple[float, float, float] = (128.0, 58.0, 62.0)
    cavity_depth_dark: float = 0.45  # the interior darkens by up to this share away from the lips (deeper)
    tongue_strength: float = 0.55  # how much the lighter tongue shows at the bottom middle of a wide opening
    teeth_rgb: tuple[float, float, float] = (238.0, 232.0, 220.0)
    teeth_height: float = 0.12  # painted upper teeth, / mouth width (and at most 0.4 of the gap)
    # The soft line where the lips meet: drawn below `seam_gap_px`, at most `seam_strength` opaque,
    # in the lips' own colour darkened by `seam_darken`.
    seam_gap_px: float = 2.5
    seam_strength: float = 0.6
    seam_darken: float = 0.55
    # The portrait's own interior (teeth, tongue) is used when its lips are this many pixels apart.
    own_interior_px: float = 3.0
    # The interior fades in over this many pixels of opening beyond the rest gap.
    interior_fade_px: float = 2.0

    # Motion (engines/preview/motion.py). Head wander amplitudes: yaw and tx in face widths, pitch and
    # ty in face heights, roll in radians; scaled by `idle_energy` + `talk_energy` while talking.
    head_yaw: float = 0.025
    head_pitch: float = 0.012
    head_roll: float = 0.02
    head_tx: float = 0.012
    head_ty: float = 0.006
    idle_energy: float = 0.6
    talk_energy: float = 0.6
    nod_pitch: float = 0.02  # a full nod lowers the face by this share of its height
    blink_every: tuple[float, float] = (2.0, 6.0)  # seconds between blinks (uniform)
    first_blink: tuple[float, float] = (0.5, 3.0)
    blink_profile: tuple[float, ...] = (0.55, 1.0, 0.6, 0.2)  # eyelid closure per frame: 160 ms at 25 fps
    prompt_cues: tuple[tuple[str, tuple[float, float, float]], ...] = PROMPT_CUES
    head_scale_range: tuple[float, float] = (0.2, 2.5)  # the prompt's head and nod multipliers are clamped to this
    mouth_scale_range: tuple[float, float] = (0.5, 1.4)


DEFAULT_STYLE = PreviewStyle()
