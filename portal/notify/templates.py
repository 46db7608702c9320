"""Rendering notification templates: a sandboxed Jinja2 with StrictUndefined, and save-time validation.

Templates are written by merchant staff, so they run in jinja2's SandboxedEnvironment (no attribute access
to internals) and only see the documented variables (portal.notify.variables.VARIABLES).
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from portal.notify import email_layout
from portal.notify.variables import VARIABLES

_text_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


class RenderError(Exception):
    pass


def validate_template(text: str) -> list[str]:
    """Problems with a template: a syntax error, or every unknown variable named. Empty list = fine."""
    if not text:
        return []
    try:
        parsed = _text_env.parse(text)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return [f"Template syntax error{f' on line {line}' if line else ''}: {exc.message or exc}"]
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(VARIABLES))
    return [f"Unknown variable: {name}" for name in unknown]


def render_text(text: str, context: dict) -> str:
    return _render(_text_env, text, context)


def render_html(text: str, context: dict) -> str:
    return _render(_html_env, text, context)


def _render(env: SandboxedEnvironment, text: str, context: dict) -> str:
    if not text:
        return ""
    try:
        return env.from_string(text).render(**context).strip()
    except TemplateError as exc:
        raise RenderError(str(exc)) from exc


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str


def render_all(template, context: dict) -> Rendered:
    """Subject, text and HTML body and SMS text of a NotificationTemplate (or anything with those fields).

    The HTML body comes framed in the brand's layout (logo, colour, support contact) in the template's language;
    the text body ends with the same support contact.
    """
    html = render_html(template.body_html, context)
    text = render_text(template.body_text, context)
    language = getattr(template, "language", "en")
    return Rendered(
        subject=" ".join(render_text(template.subject, context).split()),
        text=email_layout.with_text_footer(text, context, language) if text else "",
        html=email_layout.wrap(html, context, language) if html else "",
        sms=render_text(template.sms_text, context),
    )
