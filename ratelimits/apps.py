from django.apps import AppConfig


class RateLimitsConfig(AppConfig):
    name = "ratelimits"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Read the limits once at start-up, in every process (gunicorn runs no system checks): a mistyped
        # variable stops the server with a clear message instead of failing requests later.
        from ratelimits.rules import configured_rules

        configured_rules()
