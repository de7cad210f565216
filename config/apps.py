"""The project's own configuration of Django's apps."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin, with `admin.site` being the project's site (a rate-limited login)."""

    default_site = "config.admin.AdminSite"
