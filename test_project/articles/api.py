"""DRF views under ``/api/``: auth, object permissions, throttling and uploads.

They use the project's DRF defaults (Session, Token and Basic auth; plain JSON)
so a batch must reproduce DRF's own authentication and CSRF handling.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import permissions, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from .models import Article, Attachment, Comment
from .permissions import IsAuthorOrReadOnly
from .serializers import ArticleSerializer, CommentSerializer

OWNER_PERMISSIONS = (permissions.IsAuthenticatedOrReadOnly, IsAuthorOrReadOnly)


class PingView(APIView):
    """The cheapest possible DRF view, for benchmarks of batch overhead."""

    authentication_classes: list[type] = []
    permission_classes = (permissions.AllowAny,)

    def get(self, request: Request) -> Response:
        return Response({"pong": True})


class MeView(APIView):
    """Who DRF thinks the caller is, and which authenticator decided it."""

    permission_classes = (permissions.IsAuthenticated,)

    def get(self, request: Request) -> Response:
        authenticator = request.successful_authenticator
        return Response(
            {
                "username": request.user.get_username(),
                "id": request.user.pk,
                "auth": type(authenticator).__name__ if authenticator else None,
            }
        )


class ArticleViewSet(viewsets.ModelViewSet):
    """CRUD on articles; only the author may modify, ``?search=`` filters titles."""

    serializer_class = ArticleSerializer
    permission_classes = OWNER_PERMISSIONS

    def get_queryset(self) -> QuerySet[Article]:
        queryset = Article.objects.select_related("author")
        if search := self.request.query_params.get("search"):
            queryset = queryset.filter(title__icontains=search)
        return queryset

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save(author=self.request.user)


class CommentViewSet(viewsets.ModelViewSet):
    """CRUD on comments with the same owner-only rule as articles."""

    queryset = Comment.objects.select_related("author", "article")
    serializer_class = CommentSerializer
    permission_classes = OWNER_PERMISSIONS

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save(author=self.request.user)


class ThrottledView(APIView):
    """Scoped to the ``burst`` rate (5/min) so a batch can hit 429 like direct calls."""

    permission_classes = (permissions.AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "burst"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class AttachmentUploadView(APIView):
    """Store one uploaded ``file``; proves multipart bodies survive a batch."""

    parser_classes = (MultiPartParser, FormParser)
    permission_classes = (permissions.IsAuthenticated,)

    def post(self, request: Request) -> Response:
        uploaded = request.data.get("file")
        if uploaded is None or not hasattr(uploaded, "size"):
            return Response({"file": ["No file was submitted."]}, status=400)
        article = None
        if article_id := request.data.get("article"):
            try:
                article = Article.objects.get(pk=int(article_id))
            except (ValueError, Article.DoesNotExist):
                return Response({"article": ["Unknown article."]}, status=400)
        attachment = Attachment.objects.create(article=article, file=uploaded)
        return Response(
            {"id": attachment.pk, "name": uploaded.name, "size": uploaded.size},
            status=status.HTTP_201_CREATED,
        )
