"""test_project's URLs, with the predict demo mounted first."""

from __future__ import annotations

from django.urls import include, path

from test_project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("api/v1/predict/", include("test_project.predict.urls")),
    *project_urlpatterns,
]
