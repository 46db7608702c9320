"""Every back-office controller, registered by create_app()."""

from portal.api.views_admin import ApiKeyAdminController
from portal.brand.views import BrandSettingsController
from portal.dashboard.views import DashboardController
from portal.norway.views import NorwayController
from portal.notify.deliveries_views import DeliveryLogController
from portal.notify.views import NotificationController
from portal.privacy.views import PrivacyController
from portal.staff.admin import AdminController
from portal.staff.receiving import ReceivingController
from portal.staff.refund_views import RefundController
from portal.staff.support import SupportController
from portal.staff.views import StaffAuthController, StaffHomeController
from portal.staff.webhooks_admin import WebhookAdminController

STAFF_CONTROLLERS = [
    StaffAuthController,
    StaffHomeController,
    ReceivingController,
    SupportController,
    PrivacyController,
    RefundController,
    DashboardController,
    AdminController,
    WebhookAdminController,
    NorwayController,
    ApiKeyAdminController,
    NotificationController,
    DeliveryLogController,
    BrandSettingsController,
]
