"""Jinja2 set-up: gettext per request language, locale-aware filters, one render helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from portal import i18n
from portal.config import SUPPORTED_LANGUAGES


@pass_context
def _gettext(ctx: Any, message: str) -> str:
    return i18n.gettext(ctx.get("lang", "en"), message)


@pass_context
def _ngettext(ctx: Any, singular: str, plural: str, n: int) -> str:
    return i18n.ngettext(ctx.get("lang", "en"), singular, plural, n)


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
    env.filters.update(money=_money, date=_date, datetime=_datetime)
    env.globals.update(languages=i18n.LANGUAGE_NAMES, supported_languages=SUPPORTED_LANGUAGES)
    return env


def template_config(templates_dir: Path) -> TemplateConfig:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(build_environment(templates_dir)))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:
    """Render a page in the request's language with the merchant's time zone."""
    context.setdefault("lang", getattr(request.state, "lang", None) or "en")
    context.setdefault("tz", request.app.state.settings.timezone)
    context.setdefault("brand", request.app.state.brand)
    response = Template(template_name=name, context=context, status_code=status_code)
    chosen = request.query_params.get("lang")
    if chosen in SUPPORTED_LANGUAGES:  # the switcher: remember the consumer's choice
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="lax", httponly=True,
                            secure=request.app.state.settings.https)
    return response
