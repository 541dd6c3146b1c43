"""`liveavatar prepare`: fixed copies of the inputs, with before/after measurements.

Originals are never touched. Audio becomes a 16 kHz mono 16-bit WAV at the guide's level
(optionally denoised and with long pauses shortened); the portrait is EXIF-rotated, cropped
around the face at the wanted aspect and enlarged when small.
"""

from __future__ import annotations

from pathlib import Path

MIN_SIDE = 512


def prepare_audio(
    path: Path, out_dir: Path, denoise: bool | None = None, shorten: bool = False
) -> tuple[Path, list[str]]:
    """Write ``out_dir/<stem>.wav``; ``denoise=None`` denoises only when the noise check fires."""
    import soundfile as sf

    from liveavatar.checks import audio as audio_checks
    from liveavatar.checks import speech
    from liveavatar.media.audio import decode_audio, repair_non_finite
    from liveavatar.prepare import audio as fix

    changes: list[str] = []
    x = decode_audio(Path(path))  # first: a bad file or a named pipe is a one-line UserError
    try:
        info = sf.info(str(path))
        changes.append(
            f"format {info.format}/{info.subtype} {info.samplerate} Hz {info.channels} ch -> WAV/PCM_16 16000 Hz mono"
        )
    except (RuntimeError, sf.LibsndfileError):
        changes.append(f"{path.suffix or 'audio'} decoded with PyAV -> WAV/PCM_16 16000 Hz mono")
    x, bad = repair_non_finite(x)
    if bad:
        changes.append(f"{bad} non-finite samples (NaN or infinity) replaced with silence")
    before = speech.analyse(x)
    if denoise is None:
        denoise = before.noise_floor_db > audio_checks.MAX_NOISE_DB
    if denoise:
        from liveavatar.prepare.denoise import denoise as run_denoise

        x, method = run_denoise(x)
        after = speech.analyse(x)
        changes.append(
            f"denoised with {method}: noise floor {before.noise_floor_db:.1f} -> {after.noise_floor_db:.1f} dBFS"
        )
    if shorten:
        x, removed = fix.shorten_pauses(x)
        if removed:
            changes.append(f"pauses over {fix.MAX_PAUSE_S} s cut to {fix.KEEP_PAUSE_S} s: {removed:.1f} s removed")
    level0 = speech.speech_level_db(x, speech.speech_mask(x))
    peak0 = float(abs(x).max(initial=0.0))
    x, gain_db = fix.normalise(x)
    level1 = speech.speech_level_db(x, speech.speech_mask(x))
    peak1 = float(abs(x).max(initial=0.0))
    db = lambda v: speech._db(v)  # noqa: E731
    changes.append(
        f"speech level {level0:.1f} -> {level1:.1f} dBFS (gain {gain_db:+.1f} dB); peak {db(peak0):.1f} -> {db(peak1):.1f} dBFS"
    )
    out = Path(out_dir) / f"{Path(path).stem}.wav"
    if out.resolve() == Path(path).resolve():
        out = out.with_name(f"{out.stem}.prepared.wav")
    fix.write_wav(out, x)
    return out, changes


def prepare_image(
    path: Path, out_dir: Path, upscale: bool | None = None, size: tuple[int, int] | None = None
) -> tuple[Path, list[str]]:
    """Write ``out_dir/<stem>.png``; ``upscale=None`` enlarges only when the crop or face is small.

    ``size`` is (width, height): the crop takes its aspect; without it the portrait keeps its own.
    """
    from PIL import Image

    from liveavatar.checks.face import detect_faces
    from liveavatar.media.image import read_image
    from liveavatar.prepare import image as fix
    from liveavatar.prepare.upscale import upscale as run_upscale

    changes: list[str] = []
    rgb = read_image(Path(path))  # first: a bad file is a one-line UserError
    with Image.open(path) as img:
        raw_size, orientation = img.size, img.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        changes.append(
            f"EXIF orientation {orientation} applied: {raw_size[0]}x{raw_size[1]} -> {rgb.shape[1]}x{rgb.shape[0]}"
        )
    faces = detect_faces(rgb)
    face = faces[0] if faces else None
    if face is None:
        changes.append("no face found: centre crop")
    aspect = size[0] / size[1] if size else rgb.shape[1] / rgb.shape[0]
    box = fix.face_crop_box(rgb.shape, face, aspect)
    cropped = fix.crop(rgb, box)
    if cropped.shape[:2] != rgb.shape[:2]:
        changes.append(
            f"face-centred crop {rgb.shape[1]}x{rgb.shape[0]} -> {cropped.shape[1]}x{cropped.shape[0]} at x={box[0]}, y={box[1]}"
        )
    face_side = min(face.w, face.h) * 1.0 if face else None
    if upscale is None:
        upscale = min(cropped.shape[:2]) < MIN_SIDE or (face_side is not None and face_side < 64)
    if upscale:
        target = MIN_SIDE
        if face_side is not None and face_side < 128:
            target = max(target, int(min(cropped.shape[:2]) * 128 / face_side))
        big, method = run_upscale(cropped, min(target, 4 * MIN_SIDE))
        if big is not cropped:
            changes.append(
                f"enlarged {cropped.shape[1]}x{cropped.shape[0]} -> {big.shape[1]}x{big.shape[0]} with {method}"
            )
        cropped = big
    out = Path(out_dir) / f"{Path(path).stem}.png"
    if out.resolve() == Path(path).resolve():
        out = out.with_name(f"{out.stem}.prepared.png")
    Image.fromarray(cropped).save(out)
    if not changes:
        changes.append("no change needed (re-saved as PNG)")
    return out, changes
