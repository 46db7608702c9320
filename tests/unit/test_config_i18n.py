import pytest

from portal import i18n
from portal.config import ConfigError, Settings, settings_from_env


def test_production_refuses_the_default_secret(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        settings_from_env()
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    assert settings_from_env().is_production


def test_bad_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="TIMEZONE"):
        settings_from_env()


def test_language_negotiation_order():
    assert i18n.pick_language(None, "nb", accept_language="sv") == "nb"
    assert i18n.pick_language("xx", None, accept_language="de-DE, no;q=0.8, en;q=0.5") == "nb"
    assert i18n.pick_language(None, accept_language="fi-FI,fi;q=0.9") == "fi"
    assert i18n.pick_language(None, accept_language="de, fr") == "sv"
    assert i18n.pick_language(None, accept_language="garbage;q=x", default="en") == "en"


def test_money_is_formatted_per_locale_from_minor_units():
    assert i18n.money(129900, "SEK", "sv").replace("\xa0", " ") == "1 299,00 kr"
    assert i18n.money(1990, "EUR", "fi").replace("\xa0", " ") == "19,90 €"
    assert i18n.money(1990, "EUR", "en") == "€19.90"


@pytest.mark.parametrize("language", ["sv", "nb", "da", "fi"])
def test_every_catalogue_translates_the_start_page(language):
    assert i18n.gettext(language, "Find my order") != "Find my order"
