from django.contrib import admin
from django.urls import include, path

from batch_requests.views import handle_batch_requests

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/batch/", handle_batch_requests, name="batch"),
    path("", include("test_project.articles.urls")),
]
