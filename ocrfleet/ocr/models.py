"""Which detection and recognition models ``lang`` and ``ocr_version`` pick: PaddleOCR 3.7's table."""
from __future__ import annotations

OCR_VERSIONS = ("PP-OCRv3", "PP-OCRv4", "PP-OCRv5", "PP-OCRv6")

LATIN = frozenset(
    "af az bs cs cy da de es et fr ga hr hu id is it ku la lt lv mi ms mt nl no oc pi pl pt ro "
    "rs_latin sk sl sq sv sw tl tr uz vi french german fi eu gl lb rm ca qu".split())
ARABIC = frozenset("ar fa ug ur ps ku sd bal".split())
ESLAV = frozenset("ru be uk".split())
CYRILLIC = frozenset(
    "ru rs_cyrillic be bg uk mn abq ady kbd ava dar inh che lbe lez tab kk ky tg mk tt cv ba mhr mo "
    "udm kv os bua xal tyv sah kaa".split())
DEVANAGARI = frozenset("hi mr ne bh mai ang bho mah sck new gom sa bgc".split())
V6 = frozenset({"ch", "chinese_cht", "en", "japan"}) | (LATIN - {"pi"})
V5 = frozenset({"korean", "th", "el", "te", "ta"}) | ESLAV | ARABIC | CYRILLIC | DEVANAGARI | (LATIN - V6)
V3_SPECIFIC = ("ch", "en", "korean", "japan", "chinese_cht", "te", "ka", "ta")


def _script(lang: str, groups) -> str | None:
    for name, langs in groups:
        if lang in langs:
            return name
    return None


def ocr_model_names(lang: str | None, ocr_version: str | None) -> tuple[str | None, str | None]:
    """(detection, recognition) model names, or (None, None) when PaddleOCR has none."""
    if ocr_version is not None and ocr_version not in OCR_VERSIONS:
        raise ValueError(f"Invalid OCR version: {ocr_version}. Supported values are {list(OCR_VERSIONS)}.")
    if lang is None and ocr_version is None:
        return "PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"
    lang = lang or "ch"
    if ocr_version is None:
        if lang in V6:
            ocr_version = "PP-OCRv6"
        elif lang in V5:
            ocr_version = "PP-OCRv5"
        elif lang == "ka":
            ocr_version = "PP-OCRv3"
        else:
            return None, None
    if ocr_version == "PP-OCRv6":
        return ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec") if lang in V6 else (None, None)
    if ocr_version == "PP-OCRv5":
        if lang in ("ch", "chinese_cht", "japan"):
            return "PP-OCRv5_server_det", "PP-OCRv5_server_rec"
        if lang == "en":
            return "PP-OCRv5_server_det", "en_PP-OCRv5_mobile_rec"
        script = _script(lang, [("latin", LATIN), ("eslav", ESLAV), ("arabic", ARABIC), ("cyrillic", CYRILLIC),
                                ("devanagari", DEVANAGARI)])
        if script is None and lang in ("korean", "th", "el", "te", "ta"):
            script = lang
        return ("PP-OCRv5_server_det", f"{script}_PP-OCRv5_mobile_rec") if script else (None, None)
    if ocr_version == "PP-OCRv4":
        return {"ch": ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec"),
                "en": ("PP-OCRv4_mobile_det", "en_PP-OCRv4_mobile_rec")}.get(lang, (None, None))
    script = _script(lang, [("latin", LATIN), ("arabic", ARABIC), ("cyrillic", CYRILLIC), ("devanagari", DEVANAGARI)])
    if script is None and lang in V3_SPECIFIC:
        script = lang
    if script is None:
        return None, None
    return "PP-OCRv3_mobile_det", "PP-OCRv3_mobile_rec" if script == "ch" else f"{script}_PP-OCRv3_mobile_rec"
