"""Static files served by the web process: WhiteNoise, which also finds files collected after it started."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, plus the files a newer release collected into the same STATIC_ROOT after this process started.

    WhiteNoise lists STATIC_ROOT once, at start. During a deploy, processes of the new release start beside
    old ones, and a page rendered by a new process names new hashed files, which the browser may ask of an
    old process: that would answer 404. On a miss under STATIC_URL this looks at the disk once and keeps
    what it found (hashed names never change their content, so nothing goes stale).
    """

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        url = request.path_info
        if not self.autorefresh and self.static_root and url.startswith(self.static_prefix) and url not in self.files:
            self.maybe_add_collected_file(url)
        response: HttpResponseBase = super().__call__(request)
        return response

    def maybe_add_collected_file(self, url: str) -> None:
        root = os.path.join(os.path.abspath(self.static_root), "")
        path = os.path.join(root, url[len(self.static_prefix) :])
        if self.url_is_canonical(url) and self.path_is_child_of(path, root) and os.path.isfile(path):
            self.add_file_to_dictionary(url, path)
