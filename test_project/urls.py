from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path

from batch_requests.views import handle_batch_requests

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/batch/", handle_batch_requests, name="batch"),
    path("api/v1/predict/", include("test_project.predict.urls")),
    path("", include("test_project.articles.urls")),
]

# The peer app drf-batch-requests, only where it is installed (the benchmark venv), so that
# `make bench` can measure it on the same server. The project never depends on it.
if find_spec("drf_batch_requests") is not None:
    from drf_batch_requests.views import BatchView

    urlpatterns.insert(2, path("peer/batch/", BatchView.as_view(), name="peer-batch"))

# The OpenAPI schema, only where drf-spectacular is installed (see SPECTACULAR_SETTINGS).
if find_spec("drf_spectacular") is not None:
    from drf_spectacular.views import SpectacularAPIView

    from test_project.articles import schema  # noqa: F401  (describes the demo's APIViews)

    urlpatterns.insert(2, path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
