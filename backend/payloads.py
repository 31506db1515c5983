"""What a payload may be: checks on text and uploads, content sniffing, the reward score.

Kinds: ``text`` (a prompt and an optional emotion, as the original app took them), ``image``
(vision) and ``audio`` (voice). An upload's declared type must agree with its bytes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from .errors import BadRequest, ConfigError, PayloadTooLarge, UnsupportedMediaType

EMOTIONS = (
    "neutral",
    "happy",
    "excited",
    "calm",
    "curious",
    "sad",
    "anxious",
    "angry",
    "confused",
)

RewardScorer = Callable[[str, str | None], float]


def emotion_reward(kind: str, emotion: str | None) -> float:
    """The original app's score: 0.5 when the emotion is happy or excited, else 0.2.

    A scorer is any ``(kind, emotion) -> float`` function; pick another with
    ``SLT_REWARD_SCORER=package.module:function``. It sees the emotion tag only, never the
    prompt or file, and its result is stored beside the payload in clear.
    """
    return 0.5 if emotion in ("happy", "excited") else 0.2


def load_scorer(path: str) -> RewardScorer:
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ConfigError(f"SLT_REWARD_SCORER: cannot load {path!r} ({exc})") from None
    if not callable(fn):
        raise ConfigError(f"SLT_REWARD_SCORER: {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Plaintext:
    """A checked payload, about to be encrypted. Never logged, never stored."""

    kind: str
    content_type: str
    body: bytes
    emotion: str | None

    def __repr__(self) -> str:  # plaintext must not leak through a repr in a log or error
        return f"Plaintext(kind={self.kind!r}, size={len(self.body)})"


# Magic numbers of the formats we accept: (content type, kind, test on the first bytes).
_SIGNATURES: tuple[tuple[str, str, Callable[[bytes], bool]], ...] = (
    ("image/png", "image", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("image/jpeg", "image", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("image/gif", "image", lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    ("image/webp", "image", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    ("audio/wav", "audio", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE"),
    ("audio/ogg", "audio", lambda b: b.startswith(b"OggS")),
    ("audio/flac", "audio", lambda b: b.startswith(b"fLaC")),
    ("audio/webm", "audio", lambda b: b.startswith(b"\x1a\x45\xdf\xa3")),
    ("audio/mpeg", "audio", lambda b: b.startswith(b"ID3") or b[:2] in (b"\xff\xfb", b"\xff\xf3")),
    ("audio/mp4", "audio", lambda b: b[4:8] == b"ftyp" and b[8:11] in (b"M4A", b"mp4", b"iso")),
)

# Declared types that name the same format as a sniffed one.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "video/webm": "audio/webm",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "video/ogg": "audio/ogg",
    "application/ogg": "audio/ogg",
}


def sniff(data: bytes) -> tuple[str, str] | None:
    """The (content type, kind) that the bytes themselves show, or None."""
    for content_type, kind, test in _SIGNATURES:
        if test(data[:16]):
            return content_type, kind
    return None


def check_upload(data: bytes, declared: str | None, max_bytes: int) -> tuple[str, str]:
    """Check an uploaded file: size, and that its declared type matches its bytes."""
    if not data:
        raise BadRequest("The uploaded file is empty.", code="empty_file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {max_bytes} bytes.", code="file_too_large"
        )
    found = sniff(data)
    if found is None:
        raise UnsupportedMediaType(
            "Only images (PNG, JPEG, GIF, WebP) and audio (WAV, OGG, FLAC, WebM, MP3, M4A)"
            " are accepted.",
            code="unsupported_file_type",
        )
    content_type, kind = found
    base = (declared or "").split(";")[0].strip().lower()
    base = _ALIASES.get(base, base)
    if base and base != "application/octet-stream" and base != content_type:
        raise UnsupportedMediaType(
            f"The file was sent as {base!r} but its bytes are {content_type!r}.",
            code="content_type_mismatch",
        )
    return content_type, kind


def check_emotion(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.lower() not in EMOTIONS:
        raise BadRequest(
            f"'emotion' must be one of: {', '.join(EMOTIONS)}.", code="invalid_emotion"
        )
    return value.lower()


def check_prompt(value: object, max_chars: int) -> str:
    if not isinstance(value, str):
        raise BadRequest("'prompt' must be a string.", code="invalid_prompt")
    if not value.strip():
        raise BadRequest("'prompt' must not be empty.", code="invalid_prompt")
    if len(value) > max_chars:
        raise PayloadTooLarge(
            f"'prompt' has {len(value)} characters; the limit is {max_chars}.",
            code="prompt_too_long",
        )
    if not value.isascii():
        try:  # an unpaired surrogate is the one thing a str cannot encode to UTF-8
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                "'prompt' contains unpaired surrogates.", code="invalid_prompt"
            ) from None
    return value


def text_plaintext(prompt: str, emotion: str | None) -> Plaintext:
    return Plaintext("text", "text/plain; charset=utf-8", prompt.encode("utf-8"), emotion)


def encode_emotion(emotion: str | None) -> bytes | None:
    return None if emotion is None else json.dumps({"emotion": emotion}).encode()


def decode_emotion(blob: bytes | None) -> str | None:
    return None if blob is None else str(json.loads(blob)["emotion"])
