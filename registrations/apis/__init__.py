"""The REST API: one view per operation, each with its own input and output serializers.

`conventions` holds what every endpoint shares (parsing, fields, base views, OpenAPI answers); each resource
has a module of its own (`events`, `registrations`). The routes are in `registrations/api_urls.py`.
"""
