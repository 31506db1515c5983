"""Payload checks: content sniffing, upload and prompt validation, the reward scorer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from backend.errors import (
    BackendError,
    BadRequest,
    ConfigError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from backend.payloads import (
    EMOTIONS,
    Plaintext,
    check_emotion,
    check_prompt,
    check_upload,
    decode_emotion,
    emotion_reward,
    encode_emotion,
    load_scorer,
    sniff,
    text_plaintext,
)

# The first bytes of each accepted format, padded with a little body.
SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 8,
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 8,
    "image/gif": b"GIF89a\x01\x00\x01\x00" + b"\x00" * 8,
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 8,
    "audio/wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 8,
    "audio/ogg": b"OggS\x00\x02" + b"\x00" * 16,
    "audio/flac": b"fLaC\x00\x00\x00\x22" + b"\x00" * 8,
    "audio/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81" + b"\x00" * 8,
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 8,
    "audio/mp4": b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 8,
}
KINDS = {ct: ct.split("/")[0] for ct in SAMPLES}


@pytest.mark.parametrize("content_type", list(SAMPLES))
def test_sniff_recognises_magic_bytes(content_type: str) -> None:
    assert sniff(SAMPLES[content_type]) == (content_type, KINDS[content_type])


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfb\x90\x00" + b"\x00" * 8, b"\xff\xf3\x90\x00" + b"\x00" * 8],
    ids=["mpeg1-layer3", "mpeg2-layer3"],
)
def test_sniff_recognises_mp3_frames_without_id3(data: bytes) -> None:
    assert sniff(data) == ("audio/mpeg", "audio")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        b"%PDF-1.7\n",
        b"PK\x03\x04zipfile",
        b"RIFF\x24\x00\x00\x00AVI LIST",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x89PNG",  # truncated signature
        b"GIF88a",
        b"\x00\x00\x00\x20ftypqt  ",
    ],
    ids=["empty", "text", "pdf", "zip", "avi", "svg", "short-png", "gif88", "quicktime"],
)
def test_sniff_returns_none_for_unknown_bytes(data: bytes) -> None:
    assert sniff(data) is None


def test_sniff_looks_only_at_the_start() -> None:
    assert sniff(b"junk" + SAMPLES["image/png"]) is None


# check_upload --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", list(SAMPLES))
def test_check_upload_accepts_each_format_declared_as_itself(content_type: str) -> None:
    data = SAMPLES[content_type]
    assert check_upload(data, content_type, 1024) == (content_type, KINDS[content_type])


@pytest.mark.parametrize("declared", [None, "", "application/octet-stream"])
def test_check_upload_trusts_the_bytes_when_nothing_specific_is_declared(
    declared: str | None,
) -> None:
    assert check_upload(SAMPLES["audio/ogg"], declared, 1024) == ("audio/ogg", "audio")


@pytest.mark.parametrize(
    ("declared", "content_type"),
    [
        ("image/jpg", "image/jpeg"),
        ("audio/x-wav", "audio/wav"),
        ("audio/wave", "audio/wav"),
        ("audio/vnd.wave", "audio/wav"),
        ("audio/mp3", "audio/mpeg"),
        ("audio/x-flac", "audio/flac"),
        ("video/webm", "audio/webm"),
        ("audio/x-m4a", "audio/mp4"),
        ("audio/m4a", "audio/mp4"),
        ("video/ogg", "audio/ogg"),
        ("application/ogg", "audio/ogg"),
        ("IMAGE/PNG", "image/png"),
        ("image/png; name=a.png", "image/png"),
        ("  audio/WAV ; codecs=1", "audio/wav"),
    ],
)
def test_check_upload_accepts_aliases_case_and_parameters(declared: str, content_type: str) -> None:
    assert check_upload(SAMPLES[content_type], declared, 1024)[0] == content_type


def test_check_upload_empty_is_400_empty_file() -> None:
    with pytest.raises(BadRequest) as info:
        check_upload(b"", "image/png", 1024)
    assert (info.value.status_code, info.value.code) == (400, "empty_file")
    assert "empty" in info.value.description


def test_check_upload_too_large_is_413_and_names_the_limit() -> None:
    data = SAMPLES["image/png"] + b"\x00" * 100
    with pytest.raises(PayloadTooLarge) as info:
        check_upload(data, "image/png", len(data) - 1)
    assert (info.value.status_code, info.value.code) == (413, "file_too_large")
    assert f"limit of {len(data) - 1} bytes" in info.value.description


def test_check_upload_exactly_at_the_limit_is_accepted() -> None:
    data = SAMPLES["image/png"]
    assert check_upload(data, "image/png", len(data)) == ("image/png", "image")


@pytest.mark.parametrize("declared", ["image/png", None, "text/plain"])
def test_check_upload_unknown_bytes_is_415_unsupported_file_type(declared: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_upload(b"#!/bin/sh\nrm -rf /\n", declared, 1024)
    assert (info.value.status_code, info.value.code) == (415, "unsupported_file_type")
    assert "PNG" in info.value.description and "WAV" in info.value.description


@pytest.mark.parametrize(
    ("data_type", "declared"),
    [
        ("image/png", "audio/wav"),
        ("image/png", "image/jpeg"),
        ("audio/wav", "image/webp"),
        ("image/webp", "audio/wav"),
        ("audio/mpeg", "text/plain"),
        ("image/gif", "text/html"),
    ],
)
def test_check_upload_declared_type_mismatch_is_415(data_type: str, declared: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_upload(SAMPLES[data_type], declared, 1024)
    assert (info.value.status_code, info.value.code) == (415, "content_type_mismatch")
    assert declared in info.value.description and data_type in info.value.description


# check_prompt / check_emotion ----------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["hello", " padded ", "🧠💭 emoji", "مرحبا שלום", "a\u0000b", "x" * 50],
    ids=["ascii", "padded", "emoji", "rtl", "nul", "at-limit"],
)
def test_check_prompt_accepts_and_returns_text_unchanged(prompt: str) -> None:
    assert check_prompt(prompt, 50) == prompt


@pytest.mark.parametrize(
    "value",
    [None, 5, 1.5, True, ["a"], {"a": 1}, b"bytes"],
    ids=["none", "int", "float", "bool", "list", "dict", "bytes"],
)
def test_check_prompt_non_string_is_400_invalid_prompt(value: object) -> None:
    with pytest.raises(BadRequest, match="'prompt' must be a string") as info:
        check_prompt(value, 100)
    assert info.value.code == "invalid_prompt"


@pytest.mark.parametrize("value", ["", "   ", "\n\t "])
def test_check_prompt_blank_is_400_invalid_prompt(value: str) -> None:
    with pytest.raises(BadRequest, match="must not be empty") as info:
        check_prompt(value, 100)
    assert info.value.code == "invalid_prompt"


def test_check_prompt_too_long_is_413_prompt_too_long() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        check_prompt("x" * 51, 50)
    assert (info.value.status_code, info.value.code) == (413, "prompt_too_long")
    assert "51" in info.value.description and "50" in info.value.description


@pytest.mark.parametrize("value", ["\ud800", "ok \udfff", "a\ud83d"], ids=["high", "low", "half"])
def test_check_prompt_lone_surrogate_is_400_invalid_prompt(value: str) -> None:
    with pytest.raises(BadRequest, match="surrogate") as info:
        check_prompt(value, 100)
    assert info.value.code == "invalid_prompt"


@pytest.mark.parametrize("value", [None, ""])
def test_check_emotion_absent_is_none(value: object) -> None:
    assert check_emotion(value) is None


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_check_emotion_accepts_every_listed_emotion(emotion: str) -> None:
    assert check_emotion(emotion) == emotion
    assert check_emotion(emotion.upper()) == emotion


@pytest.mark.parametrize(
    "value",
    ["furious", "happy ", "HAPPY!", 1, True, ["happy"], {"emotion": "happy"}, "\ud800"],
    ids=["unknown", "padded", "punct", "int", "bool", "list", "dict", "surrogate"],
)
def test_check_emotion_bad_value_is_400_invalid_emotion_listing_choices(value: object) -> None:
    with pytest.raises(BadRequest) as info:
        check_emotion(value)
    assert (info.value.status_code, info.value.code) == (400, "invalid_emotion")
    assert all(e in info.value.description for e in EMOTIONS)


def test_errors_raised_by_checks_are_backend_errors_with_json_bodies() -> None:
    with pytest.raises(BackendError) as info:
        check_upload(b"", None, 1)
    assert info.value.to_dict() == {
        "code": "empty_file",
        "name": "Bad Request",
        "description": "The uploaded file is empty.",
    }


# Reward scorer -------------------------------------------------------------------------------


@pytest.mark.parametrize("emotion", ["happy", "excited"])
def test_emotion_reward_is_half_for_happy_or_excited(emotion: str) -> None:
    for kind in ("text", "image", "audio"):
        assert emotion_reward(kind, emotion) == 0.5


@pytest.mark.parametrize("emotion", [None, *(e for e in EMOTIONS if e not in ("happy", "excited"))])
def test_emotion_reward_is_two_tenths_otherwise(emotion: str | None) -> None:
    assert emotion_reward("text", emotion) == 0.2


def test_load_scorer_default_path() -> None:
    assert load_scorer("backend.payloads:emotion_reward") is emotion_reward


def test_load_scorer_custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "slt_custom_scorer_for_test.py"
    module.write_text(
        textwrap.dedent(
            """
            def score(kind, emotion):
                return {"image": 0.9, "audio": 0.7}.get(kind, 0.1)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = load_scorer("slt_custom_scorer_for_test:score")
    assert scorer("image", None) == 0.9
    assert scorer("audio", "happy") == 0.7
    assert scorer("text", "happy") == 0.1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_slt_xyz:score", "cannot load 'no_such_module_slt_xyz:score'"),
        ("backend.payloads:no_such_function", "cannot load 'backend.payloads:no_such_function'"),
        ("backend.payloads", "cannot load 'backend.payloads'"),
        ("backend.payloads:EMOTIONS", "is not callable"),
    ],
    ids=["no-module", "no-function", "no-colon", "not-callable"],
)
def test_load_scorer_bad_path_is_a_config_error_naming_the_setting(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match="SLT_REWARD_SCORER") as info:
        load_scorer(path)
    assert message in str(info.value)


@pytest.mark.parametrize("path", [":emotion_reward", "..payloads:emotion_reward"])
def test_load_scorer_empty_or_relative_module_is_a_config_error(path: str) -> None:
    with pytest.raises(ConfigError, match="SLT_REWARD_SCORER"):
        load_scorer(path)


# Plaintext -----------------------------------------------------------------------------------


def test_plaintext_repr_shows_no_content() -> None:
    plain = text_plaintext("marker-secret-thought", "sad")
    for text in (repr(plain), str(plain), f"{plain}", f"{plain!r}", repr([plain])):
        assert "marker-secret-thought" not in text
        assert "sad" not in text
    assert repr(plain) == "Plaintext(kind='text', size=21)"


def test_plaintext_repr_of_binary_upload_shows_only_kind_and_size() -> None:
    plain = Plaintext("image", "image/png", SAMPLES["image/png"], None)
    assert repr(plain) == f"Plaintext(kind='image', size={len(SAMPLES['image/png'])})"


def test_text_plaintext_is_utf8() -> None:
    plain = text_plaintext("é🧠", None)
    assert (plain.kind, plain.content_type) == ("text", "text/plain; charset=utf-8")
    assert plain.body == "é🧠".encode()


@pytest.mark.parametrize("emotion", [None, "happy", "calm"])
def test_emotion_encoding_round_trip(emotion: str | None) -> None:
    assert decode_emotion(encode_emotion(emotion)) == emotion
