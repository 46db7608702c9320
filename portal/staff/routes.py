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
from portal.staff.webhooks_admin import WebhookAdminController; STAFF_CONTROLLERS.append(WebhookAdminController)  # noqa: E402,E702
from portal.webhooks.shop import ShopWebhookController; STAFF_CONTROLLERS.append(ShopWebhookController)  # noqa: E402,E702  (until create_app registers it)
from portal.norway.views import NorwayController; STAFF_CONTROLLERS.append(NorwayController)  # noqa: E402,E702
