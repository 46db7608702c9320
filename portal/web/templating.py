"""Jinja2 set-up: gettext per request language, locale-aware filters, one render helper.

Templates under templates/staff/ are the back-office: `_()` there reads the `staff` catalogue and the
language is the staff user's (English or Swedish). Everything else reads the consumer `messages` catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import escape
from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from portal import i18n
from portal.config import SUPPORTED_LANGUAGES
from portal.staff.vocabulary import term


STAFF_TEMPLATES = "staff/"


def _is_staff_template(ctx: Any) -> bool:
    # The name of the template being rendered (or that defines the macro), so includes and macros follow too.
    return (ctx.name or "").startswith(STAFF_TEMPLATES)


@pass_context
def _gettext(ctx: Any, message: str, **variables: Any) -> str:
    if not message:  # None, undefined or "" (whose "translation" would be the catalogue header)
        return ""
    lang = ctx.get("lang", "en")
    if isinstance(message, i18n.StaffText):
        text = message.translated(lang)
    elif _is_staff_template(ctx):
        text = i18n.staff_gettext(lang, message)
    else:
        text = i18n.gettext(lang, message)
    return _output(ctx, text, variables)


@pass_context
def _ngettext(ctx: Any, singular: str, plural: str, n: int, **variables: Any) -> str:
    lang = ctx.get("lang", "en")
    translate = i18n.staff_ngettext if _is_staff_template(ctx) else i18n.ngettext
    variables.setdefault("num", n)
    return _output(ctx, translate(lang, singular, plural, n), variables)


def _output(ctx: Any, text: str, variables: dict) -> str:
    """Like Jinja's new-style gettext, but the text is escaped rather than trusted: `_()` is also used on
    messages built at run time (error details, field errors) that can contain what someone typed. Such
    a message is never used as a format string either, so a stray % in it is harmless."""
    if ctx.eval_ctx.autoescape:
        text = escape(text)
    return text % variables if variables else text.replace("%%", "%")


@pass_context
def _term(ctx: Any, code: str | None, kind: str) -> str:
    """`{{ ret.status | term("status") }}`: a stored code by its back-office name, translated."""
    return _gettext(ctx, term(kind, code))


@pass_context
def _money(ctx: Any, amount_minor: int, currency: str) -> str:
    return i18n.money(amount_minor, currency, ctx.get("lang", "en"))


@pass_context
def _date(ctx: Any, value: Any, fmt: str = "long") -> str:
    return i18n.local_date(value, ctx.get("lang", "en"), ctx.get("tz", "Europe/Stockholm"), fmt)


@pass_context
def _datetime(ctx: Any, value: Any) -> str:
    return i18n.local_datetime(value, ctx.get("lang", "en"), ctx.get("tz", "Europe/Stockholm"))


def build_environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    # Ours already format and escape: replace Jinja's wrappers (which trust the text) by them.
    env.globals.update(gettext=_gettext, ngettext=_ngettext)
    env.filters.update(money=_money, date=_date, datetime=_datetime, term=_term)
    env.globals.update(languages=i18n.LANGUAGE_NAMES, supported_languages=SUPPORTED_LANGUAGES)
    return env


def template_config(templates_dir: Path) -> TemplateConfig:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(build_environment(templates_dir)))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:
    """Render a page in the request's language (a staff page: the staff user's) with the merchant's time zone."""
    if name.startswith(STAFF_TEMPLATES):
        context.setdefault("lang", staff_language(request))
    context.setdefault("lang", getattr(request.state, "lang", None) or request_language(request))
    context.setdefault("tz", request.app.state.settings.timezone)
    context.setdefault("brand", request.app.state.brand_cache.get())
    response = Template(template_name=name, context=context, status_code=status_code)
    chosen = request.query_params.get("lang")
    if chosen in SUPPORTED_LANGUAGES:  # the switcher: remember the consumer's choice
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="lax", httponly=True,
                            secure=request.app.state.settings.https)
    return response


def request_language(request: Request) -> str:
    """The consumer's language: ?lang=, the switcher's cookie, the browser's Accept-Language, the default.
    Set on every request before its handler; also used for errors raised before that (CSRF, unknown page)."""
    return i18n.pick_language(
        request.query_params.get("lang"), request.cookies.get("lang"),
        accept_language=request.headers.get("accept-language"), default=request.app.state.settings.default_language,
    )


def staff_language(request: Request) -> str:
    """The logged-in staff user's language (the guard puts the user on the request); before log-in the
    browser's: Swedish when it asks for it, else English."""
    staff = getattr(request.state, "staff", None)
    if staff is not None:
        return staff.language
    return i18n.pick_staff_language(request.headers.get("accept-language"))
