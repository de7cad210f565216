"""URL routes."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import monitoring

handler404 = monitoring.not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", monitoring.health),
    path("readyz", monitoring.ready),
    path("metrics", monitoring.metrics),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("registrations.api_urls")),
    re_path(r"^api/(?P<rest>.*)$", monitoring.api_not_found),  # JSON, also under DEBUG
    path("dashboard/", include("analytics.urls")),
    path("", include("invoicing.urls")),
    *(
        # anymail's ESP webhooks (tracking: delivered, bounced...), behind its HTTP basic auth. Without a
        # secret anymail would take anyone's posts, so they are not served at all.
        [path("anymail/", include("anymail.urls"))] if settings.ANYMAIL.get("WEBHOOK_SECRET") else []
    ),
    path("", include("registrations.urls")),
]
