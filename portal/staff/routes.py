"""Every back-office controller, registered by create_app()."""

from portal.staff.admin import AdminController
from portal.staff.receiving import ReceivingController
from portal.staff.refund_views import RefundController
from portal.staff.support import SupportController
from portal.staff.views import StaffAuthController, StaffHomeController

STAFF_CONTROLLERS = [
    StaffAuthController,
    StaffHomeController,
    ReceivingController,
    SupportController,
    RefundController,
    AdminController,
]
