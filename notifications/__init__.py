"""E-mails through django-anymail and the e-mail log."""
