"""Back-office: download everything held about one customer (support and admin). Thin: check, call, audit, send."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from sqlmodel import Session

from portal.i18n import staff_text
from portal.models import Customer, utcnow
from portal.privacy.export import customer_export, export_filename, export_json
from portal.staff.accounts import audit
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip

EXPORT_ACTION = "customer.exported"


class PrivacyController(Controller):
    path = "/staff/customers"
    guards = [staff_guard]
    include_in_schema = False

    @get("/{customer_id:int}/export", name="staff_customer_export", opt={"roles": ("support",)}, sync_to_thread=True)
    def export(self, request: Request, customer_id: FromPath[int], db: NamedDependency[Session]) -> Response:
        customer = db.get(Customer, customer_id)
        if customer is None:
            raise NotFoundException(detail=staff_text("No customer with id %(id)s.", id=customer_id))
        data = customer_export(db, customer)
        staff = staff_of(request)
        audit(db, staff.email, EXPORT_ACTION, f"customer:{customer.id}", {}, {
            "customer_id": customer.id, "orders": len(data["orders"]), "returns": len(data["returns"]),
            "anonymised": customer.anonymised_at is not None,
        }, client_ip(request))
        return Response(export_json(data), media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{export_filename(customer, utcnow())}"',
            "Cache-Control": "no-store",
        })
