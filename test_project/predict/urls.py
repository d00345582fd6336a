"""Mount with ``path("api/v1/predict/", include("test_project.predict.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.predict, name="predict"),
    path("async/", views.apredict, name="predict-async"),
]
