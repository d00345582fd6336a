"""URLs of the demo app: ``/``, ``/views/``, ``/api/`` and ``/jsonapi/``."""

from __future__ import annotations

from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from . import api, attack_views, jsonapi, pages, views

api_router = DefaultRouter()
api_router.register("articles", api.ArticleViewSet, basename="api-article")
api_router.register("comments", api.CommentViewSet, basename="api-comment")

jsonapi_router = DefaultRouter()
jsonapi_router.register("articles", jsonapi.ArticleResourceViewSet, basename="jsonapi-article")
jsonapi_router.register("comments", jsonapi.CommentResourceViewSet, basename="jsonapi-comment")

view_patterns = [
    path("", views.index, name="views-index"),
    path("articles/", views.article_list, name="views-article-list"),
    path("articles/create/", views.article_create, name="views-article-create"),
    path("articles/<int:pk>/", views.article_detail, name="views-article-detail"),
    path("whoami/", views.whoami, name="views-whoami"),
    path("echo/", views.echo, name="views-echo"),
    path("error/", views.error, name="views-error"),
    path("binary/", views.binary, name="views-binary"),
    path("latin1/", views.latin1, name="views-latin1"),
    path("stream/", views.stream, name="views-stream"),
    path("file/", views.file_download, name="views-file"),
    path("template/", views.template, name="views-template"),
    path("sleep/", views.sleep, name="views-sleep"),
    path("cpu/", views.cpu, name="views-cpu"),
    path("barrier/", views.barrier, name="views-barrier"),
    path("async-meeting/", views.async_meeting, name="views-async-meeting"),
    path("crash/", views.crash, name="views-crash"),
    path("login-required/", views.login_required_view, name="views-login-required"),
    path("set-cookie/", views.set_cookie, name="views-set-cookie"),
    path("redirect/", views.redirect, name="views-redirect"),
    path("csrf-protected/", views.csrf_protected, name="views-csrf-protected"),
]

api_patterns = [
    path("ping/", api.PingView.as_view(), name="api-ping"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("throttled/", api.ThrottledView.as_view(), name="api-throttled"),
    path("attachments/", api.AttachmentUploadView.as_view(), name="api-attachments"),
    path("", include(api_router.urls)),
]

jsonapi_patterns = [
    path(
        "articles/<int:pk>/relationships/<str:related_field>/",
        jsonapi.ArticleRelationshipView.as_view(),
        name="jsonapi-article-relationships",
    ),
    path(
        "articles/<int:pk>/<str:related_field>/",
        jsonapi.ArticleResourceViewSet.as_view({"get": "retrieve_related"}),
        name="jsonapi-article-related",
    ),
    path("", include(jsonapi_router.urls)),
]

attack_patterns = [
    path("slow-stream/", attack_views.slow_stream, name="attack-slow-stream"),
    path("streams/", attack_views.streams, name="attack-streams"),
    path("hold/", attack_views.hold, name="attack-hold"),
    path("release/", attack_views.release, name="attack-release"),
    path("big-text/", attack_views.big_text, name="attack-big-text"),
    path("raw-json/", attack_views.raw_json, name="attack-raw-json"),
    path("upload-size/", attack_views.upload_size, name="attack-upload-size"),
    path("csrf-token/", attack_views.csrf_token, name="attack-csrf-token"),
    path("login/", attack_views.login_attempt, name="attack-login"),
    path("login-non-atomic/", attack_views.login_attempt_non_atomic,
         name="attack-login-non-atomic"),
    path("durable-create/", attack_views.durable_create, name="attack-durable-create"),
]

urlpatterns = [
    path("", pages.home, name="home"),
    # Test-only pages for tests/test_browser.py (see pages.py), not part of the demo.
    path("test-pages/redirect/", pages.redirect_test_page, name="test-page-redirect"),
    path("test-pages/batch-script/", pages.batch_script_test_page, name="test-page-batch-script"),
    path("attack/", include(attack_patterns)),
    path("views/", include(view_patterns)),
    path("api/", include(api_patterns)),
    path("jsonapi/", include(jsonapi_patterns)),
    # The demo page loads batch.js from the static files; gunicorn with DEBUG off (the browser
    # test) has no static server, so the demo project serves them itself. Never do this in
    # production: use WhiteNoise or the web server.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]
