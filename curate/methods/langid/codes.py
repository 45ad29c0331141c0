"""Language codes: every backend's labels in one convention.

The convention: ISO 639-1 (two letters) where the language has such a code, else ISO 639-3 (three letters);
lower case; no region or script (`zh-Hant`, `pt_BR`, `sr-Latn` and `ja-Latn` become `zh`, `pt`, `sr`, `ja`).
Deprecated or non-standard two-letter codes that identifiers still emit are replaced (`iw` -> `he`, `in` -> `id`,
`ji` -> `yi`, `jw` -> `jv`, `mo` -> `ro`), and Norwegian Bokmål is reported as `no` (as CLD2, CLD3, langid.py
and fastText do; Lingua's `nb` is mapped), Nynorsk stays `nn`. A text with no language is `und` (ISO 639-2's
"undetermined"); `zxx` ("no linguistic content", from langid.py) is kept.
"""
from __future__ import annotations

from functools import lru_cache

UNDETERMINED = "und"

# ISO 639-3 (and 639-2/B) code -> ISO 639-1 code, for every language that has one (from Debian's iso-codes
# tables): each entry is three letters then two.
_TO_639_1 = dict((entry[:3], entry[3:]) for entry in """
    aaraa abkab afraf akaak amham araar argan asmas avaav aveae aymay azeaz bakba bambm belbe benbn bisbi bodbo
    bosbs brebr bulbg catca cescs chach chece chucu chvcv corkw cosco crecr cymcy danda deude divdv dzodz ellel
    engen epoeo estet euseu eweee faofo fasfa fijfj finfi frafr fryfy fulff glagd glega glggl glvgv grngn gujgu
    hatht hauha hbssh hebhe herhz hinhi hmoho hrvhr hunhu hyehy iboig idoio iiiii ikuiu ileie inaia indid ipkik
    islis itait javjv jpnja kalkl kankn kasks katka kaukr kazkk khmkm kikki kinrw kirky komkv konkg korko kuakj
    kurku laolo latla lavlv limli linln litlt ltzlb lublu luglg mahmh malml marmr mkdmk mlgmg mltmt monmn mrimi
    msams myamy nauna navnv nblnr ndend ndong nepne nldnl nnonn nobnb norno nyany ocioc ojioj orior ormom ossos
    panpa plipi polpl porpt pusps quequ rohrm ronro runrn rusru sagsg sansa sinsi slksk slvsl smese smosm snasn
    sndsd somso sotst spaes sqisq srdsc srpsr sswss sunsu swasw swesv tahty tamta tattt telte tgktg tgltl thath
    tirti tonto tsntn tsots tuktk turtr twitw uigug ukruk urdur uzbuz venve vievi volvo wlnwa wolwo xhoxh yidyi
    yoryo zhaza zhozh zulzu albsq armhy baqeu burmy chizh czecs dutnl frefr geoka gerde greel iceis macmk maomi
    mayms perfa rumro slosk tibbo welcy
""".split())

_REPLACED = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro", "nb": "no", "un": UNDETERMINED,
             "xx": UNDETERMINED, "xxx": UNDETERMINED, "unknown": UNDETERMINED, "": UNDETERMINED}


@lru_cache(maxsize=4096)
def normalise(code: str) -> str:
    """One backend label (`__label__de`, `zh-Hant`, `pt_BR`, `deu`, `eng_Latn`, `iw`) in the convention above."""
    code = code.removeprefix("__label__").strip().lower().replace("_", "-").split("@")[0]
    base = code.split("-")[0]
    base = _TO_639_1.get(base, base)
    return _REPLACED.get(base, base)
