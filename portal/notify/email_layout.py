"""The branded frame around a notification e-mail's HTML body (templates/emails/layout.html), and the same
support contact under its plain-text body (templates/emails/footer.txt)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from markupsafe import Markup

from portal.brand.cache import DEFAULT_COLOUR
from portal.config import REPO_ROOT, SUPPORTED_LANGUAGES
from portal.web.templating import build_environment

TEMPLATES_DIR = REPO_ROOT / "templates"
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class EmailBrand:
    """What the frame shows, from the template variables (build_variables puts them there)."""

    name: str
    colour: str
    logo_url: str  # absolute: a mail client has no base URL
    support_email: str
    support_phone_display: str  # as the variable holds it: "+46 8 123 456 78"
    support_url: str

    @property
    def support_phone(self) -> str:
        """E.164 for the tel: link."""
        try:
            number = phonenumbers.parse(self.support_phone_display, None)
        except phonenumbers.NumberParseException:
            return ""
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def brand_from_variables(variables: dict) -> EmailBrand:
    colour = str(variables.get("brand_colour") or "")
    return EmailBrand(
        name=str(variables.get("merchant_name") or ""),
        colour=colour if _HEX_COLOUR.match(colour) else DEFAULT_COLOUR,  # it lands in style attributes
        logo_url=str(variables.get("logo_url") or ""),
        support_email=str(variables.get("support_email") or ""),
        support_phone_display=str(variables.get("support_phone") or ""),
        support_url=str(variables.get("support_url") or ""),
    )


@lru_cache(maxsize=2)
def _template(name: str):
    return build_environment(TEMPLATES_DIR).get_template(name)


def wrap(body_html: str, variables: dict, language: str) -> str:
    """The full HTML document: body_html (already rendered and escaped) inside the brand's frame."""
    lang = language if language in SUPPORTED_LANGUAGES else "en"
    return _template("emails/layout.html").render(lang=lang, brand=brand_from_variables(variables),
                                                  body=Markup(body_html)).strip()


TEXT_SIGNATURE = "\n\n-- \n"  # the usual signature separator: mail clients set what follows apart


def with_text_footer(body_text: str, variables: dict, language: str) -> str:
    """The plain-text body followed by the brand's support contact, in `language`."""
    lang = language if language in SUPPORTED_LANGUAGES else "en"
    footer = _template("emails/footer.txt").render(lang=lang, brand=brand_from_variables(variables)).strip()
    return body_text + TEXT_SIGNATURE + footer
