"""/api/v1: orders (create-or-update, bulk) and returns (list, read, create). Bearer API keys with scopes.

Every client error is an RFC 9457 problem (application/problem+json) with a field-level "errors" list.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Optional

from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlmodel import Session

from portal.api import orders, returns_api
from portal.api.guard import api_key_guard
from portal.api.schemas import (
    BulkIn, BulkItemResult, BulkOut, FieldError, OrderIn, OrderOut, ReturnDetail, ReturnIn, ReturnPage,
)
from portal.web.errors import problem
from portal.numbers import is_digits

MAX_BULK = 1000


class ApiProblem(ClientException):
    def __init__(self, status: int, detail: str, errors: list[dict] | None = None):
        super().__init__(detail=detail)
        self.status_code = status
        self.errors = errors or []


def _field_of(error: dict) -> str:
    key = error.get("key")
    message = str(error.get("message", ""))
    if key:
        return str(key)
    if "at `$" in message:
        return message.split("at `$", 1)[1].rstrip("`").lstrip(".") or "body"
    return "body"


def _handle(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ApiProblem):
        return problem(exc.status_code, exc.detail, exc.errors)
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        errors = [{"field": _field_of(e), "message": str(e.get("message", ""))} for e in extra if isinstance(e, dict)]
        return problem(400, "The request has invalid fields.", errors or [{"field": "body", "message": str(exc.detail)}])
    return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


def _today() -> date:
    return datetime.now(timezone.utc).date()


class OrdersApi(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]
    guards = [api_key_guard]
    exception_handlers = {HTTPException: _handle}

    @put("/{number:str}", name="api_order_upsert", opt={"scope": "orders:write"}, sync_to_thread=True,
         responses={201: ResponseSpec(data_container=OrderOut, description="The order was created")},
         summary="Create or update an order (idempotent on the order number)",
         description="Returns 201 when created, 200 when it existed. Norwegian orders may carry their export declaration.")
    def upsert(self, number: FromPath[str], data: JSONBody[OrderIn], db: NamedDependency[Session]) -> Response[OrderOut]:
        try:
            result = orders.upsert_order(db, number, data)
        except orders.OrderInputError as exc:
            db.rollback()
            raise ApiProblem(exc.status, "The order was not stored.", exc.errors) from None
        out = OrderOut(number=number, id=result.order.id, created=result.created, changed=result.changed,
                       lines=result.lines, export_declaration_mrn=result.mrn,
                       personal_data_withheld=result.personal_data_withheld)
        return Response(out, status_code=201 if result.created else 200)

    @post("/bulk", name="api_order_bulk", opt={"scope": "orders:write"}, sync_to_thread=True, status_code=200,
          summary=f"Create or update up to {MAX_BULK} orders; each item is reported on its own",
          description="Each item is the order body plus its 'number'. Valid items are stored even when others are refused.")
    def bulk(self, data: JSONBody[BulkIn], db: NamedDependency[Session]) -> BulkOut:
        if len(data.orders) > MAX_BULK:  # also enforced by the schema
            raise ApiProblem(413, f"At most {MAX_BULK} orders per request.")
        results = orders.bulk_upsert(db, data.orders)
        items = [BulkItemResult(index=r["index"], number=r["number"], status=r["status"], created=r["created"],
                                changed=r["changed"], personal_data_withheld=r.get("personal_data_withheld", False),
                                errors=[FieldError(**e) for e in r["errors"]]) for r in results]
        accepted = sum(1 for r in results if r["status"] < 300)
        return BulkOut(accepted=accepted, rejected=len(results) - accepted, results=items)


class ReturnsApi(Controller):
    path = "/api/v1/returns"
    tags = ["returns"]
    guards = [api_key_guard]
    exception_handlers = {HTTPException: _handle}

    @get("/", name="api_returns", opt={"scope": "returns:read"}, sync_to_thread=True,
         summary="List returns, oldest first, with cursor pagination")
    def index(
        self,
        db: NamedDependency[Session],
        status: Annotated[Optional[str], QueryParameter(max_length=24)] = None,
        order_number: Annotated[Optional[str], QueryParameter(max_length=40)] = None,
        created_after: FromQuery[Optional[datetime]] = None,
        created_before: FromQuery[Optional[datetime]] = None,
        cursor: Annotated[Optional[str], QueryParameter(max_length=20, description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=returns_api.MAX_LIMIT)] = 50,
    ) -> ReturnPage:
        if cursor is not None and not is_digits(cursor):
            raise ApiProblem(400, "The cursor is not valid.", [{"field": "cursor", "message": "Use next_cursor from the previous page."}])
        filters = returns_api.ReturnFilters(status, order_number, _aware(created_after), _aware(created_before))
        return returns_api.list_returns(db, filters, int(cursor) if cursor else None, limit)

    @get("/{rma:str}", name="api_return", opt={"scope": "returns:read"}, sync_to_thread=True,
         summary="One return with its lines, timeline and refunds")
    def show(self, rma: FromPath[str], db: NamedDependency[Session]) -> ReturnDetail:
        found = returns_api.detail(db, rma[:40])
        if found is None:
            raise ApiProblem(404, f"No return {rma[:40]!r}.")
        return found

    @post("/", name="api_return_create", opt={"scope": "returns:write"}, sync_to_thread=True, status_code=201,
          responses={200: ResponseSpec(data_container=ReturnDetail, description="The same idempotency_key was used before")},
          summary="Register a return on behalf of a customer (as support does)",
          description="Idempotent on idempotency_key: 201 when created, 200 when the same key was used before.")
    def create(self, request: Request, data: JSONBody[ReturnIn], db: NamedDependency[Session]) -> Response[ReturnDetail]:
        try:
            ret, created = returns_api.create_return(db, data, request.state.api_key.actor, _today())
        except returns_api.ApiReturnError as exc:
            db.rollback()
            raise ApiProblem(exc.status, "The return was not registered.", exc.errors) from None
        db.flush()
        return Response(returns_api.detail(db, ret.rma), status_code=201 if created else 200)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


API_V1_CONTROLLERS = [OrdersApi, ReturnsApi]
