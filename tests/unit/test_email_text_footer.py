"""The plain-text part of a notification ends with the brand's support contact, like the HTML frame: in the
recipient's language, as plain text (nothing HTML-escaped), without the lines the merchant left empty."""

from __future__ import annotations

from portal.notify.email_layout import TEXT_SIGNATURE, with_text_footer

BRAND = {"merchant_name": "Fjäll & Co <AB>", "support_email": "hjalp@fjall.example",
         "support_phone": "+46 8 123 456 78", "support_url": "https://fjall.example/hjalp"}


def test_the_footer_follows_the_signature_separator_in_each_language():
    expected_first_line = {
        "sv": "Frågor om din retur? Kontakta Fjäll & Co <AB>:",
        "nb": "Spørsmål om returen din? Kontakt Fjäll & Co <AB>:",
        "da": "Spørgsmål til din returnering? Kontakt Fjäll & Co <AB>:",
        "fi": "Kysyttävää palautuksesta? Fjäll & Co <AB> – yhteystiedot:",
        "en": "Questions about your return? Contact Fjäll & Co <AB>:",
    }
    for language, first_line in expected_first_line.items():
        body, footer = with_text_footer("Hej!", BRAND, language).split(TEXT_SIGNATURE)
        lines = footer.splitlines()
        assert body == "Hej!" and lines[0] == first_line, language
        assert lines[1].endswith(": hjalp@fjall.example") and lines[2].endswith(": +46 8 123 456 78")
        assert lines[3].endswith(": https://fjall.example/hjalp") and len(lines) == 4
        assert "&amp;" not in footer and "&lt;" not in footer


def test_no_phone_or_help_page_no_line_and_an_unknown_language_reads_english():
    footer = with_text_footer("Hi", {"merchant_name": "Shop", "support_email": "help@shop.example"}, "de")
    assert footer.split(TEXT_SIGNATURE)[1].splitlines() == [
        "Questions about your return? Contact Shop:", "E-mail: help@shop.example"]
