"""Translations: gettext with a German catalogue compiled from its .po file in pure Python.

``msgfmt`` may be absent on the build machine and on the appliance, so a ``.mo`` is produced at run
time from ``kiosk/locale/<lang>/LC_MESSAGES/lumbarest-kiosk.po`` (in memory) when no up-to-date
compiled file ships next to it. English is the source language.
"""

from __future__ import annotations

import ast
import gettext
import io
import struct
from pathlib import Path

DOMAIN = "lumbarest-kiosk"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "de")

_current: gettext.NullTranslations = gettext.NullTranslations()
_lang = "en"


def parse_po(text: str) -> dict[str, str]:
    """Parse a .po file into ``{msgid: msgstr}`` (no plurals, no contexts: we use neither)."""
    messages: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    section = None
    fuzzy = False

    def flush():
        nonlocal msgid, msgstr, fuzzy
        if msgid is not None and msgstr is not None and not fuzzy:
            messages["".join(msgid)] = "".join(msgstr)
        msgid = msgstr = None
        fuzzy = False

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            flush()
            fuzzy = True
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if msgstr is not None:
                keep_fuzzy = fuzzy
                flush()
                fuzzy = keep_fuzzy
            msgid = [ast.literal_eval(line[6:])]
            section = "id"
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            section = "str"
        elif line.startswith('"'):
            part = ast.literal_eval(line)
            if section == "id" and msgid is not None:
                msgid.append(part)
            elif section == "str" and msgstr is not None:
                msgstr.append(part)
    flush()
    return messages


def compile_mo(messages: dict[str, str]) -> bytes:
    """The GNU .mo image of ``messages`` (what ``msgfmt`` writes), little-endian, no hash table."""
    keys = sorted(messages)
    ids = b""
    strs = b""
    offsets = []
    for key in keys:
        kb, vb = key.encode(), messages[key].encode()
        offsets.append((len(ids), len(kb), len(strs), len(vb)))
        ids += kb + b"\0"
        strs += vb + b"\0"
    n = len(keys)
    keystart = 7 * 4 + 16 * n
    valuestart = keystart + len(ids)
    koffsets, voffsets = [], []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + keystart]
        voffsets += [l2, o2 + valuestart]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, n, 7 * 4, 7 * 4 + n * 8, 0, 0)
    return (header + struct.pack(f"{len(koffsets)}i", *koffsets)
            + struct.pack(f"{len(voffsets)}i", *voffsets) + ids + strs)


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(lang: str) -> gettext.NullTranslations:
    """The translations for ``lang`` (``en`` is the identity)."""
    if lang == "en" or lang not in LANGUAGES:
        return gettext.NullTranslations()
    po = po_path(lang)
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with open(mo, "rb") as fh:
            return gettext.GNUTranslations(fh)
    if not po.exists():
        return gettext.NullTranslations()
    data = compile_mo(parse_po(po.read_text(encoding="utf-8")))
    return gettext.GNUTranslations(io.BytesIO(data))


def set_language(lang: str) -> str:
    """Switch the process-wide language; returns the language in effect."""
    global _current, _lang
    lang = lang if lang in LANGUAGES else "en"
    _current = load(lang)
    _lang = lang
    return lang


def language() -> str:
    return _lang


def _(message: str) -> str:
    """Translate ``message`` into the current language."""
    return _current.gettext(message)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now."""
    return message


def extract_messages(paths=None) -> list[str]:
    """Every literal passed to ``_()`` or ``N_()`` in the kiosk's modules, in order of appearance.

    Used by the tests to prove the German catalogue is complete; ``python -m kiosk.i18n`` prints
    the untranslated ones as .po entries.
    """
    import ast as _ast
    paths = paths or sorted(Path(__file__).resolve().parent.rglob("*.py"))
    found: list[str] = []
    for path in paths:
        tree = _ast.parse(Path(path).read_text(encoding="utf-8"))
        for node in _ast.walk(tree):
            if (isinstance(node, _ast.Call) and isinstance(node.func, _ast.Name)
                    and node.func.id in ("_", "N_") and node.args
                    and isinstance(node.args[0], _ast.Constant)
                    and isinstance(node.args[0].value, str)):
                if node.args[0].value not in found:
                    found.append(node.args[0].value)
    return found


def _po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


if __name__ == "__main__":
    catalogue = parse_po(po_path("de").read_text(encoding="utf-8")) if po_path("de").exists() \
        else {}
    for msg in extract_messages():
        if not catalogue.get(msg):
            print(f"msgid {_po_quote(msg)}\nmsgstr \"\"\n")
