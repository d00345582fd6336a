"""JSON:API views under ``/jsonapi/``.

The project's DRF defaults stay plain JSON, so every JSON:API class set here is
declared on the views themselves; a batch must then honour per-view parsers,
renderers and error formats, not just project-wide ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import permissions, serializers
from rest_framework.filters import SearchFilter
from rest_framework.metadata import SimpleMetadata
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework_json_api import views
from rest_framework_json_api.exceptions import exception_handler as jsonapi_exception_handler
from rest_framework_json_api.filters import OrderingFilter, QueryParameterValidationFilter
from rest_framework_json_api.metadata import JSONAPIMetadata
from rest_framework_json_api.pagination import JsonApiPageNumberPagination
from rest_framework_json_api.parsers import JSONParser
from rest_framework_json_api.renderers import JSONRenderer

from .jsonapi_serializers import ArticleResourceSerializer, CommentResourceSerializer
from .models import Article, Comment
from .permissions import IsAuthorOrReadOnly


class ArticleAwareMetadata(JSONAPIMetadata):
    """JSON:API metadata that treats ``ReadOnlyField(source="author.username")`` as an attribute.

    The library takes any field named like a model relation for a relationship, and fails on
    the dotted source with a 500 on OPTIONS.
    """

    def get_field_info(self, field: Any) -> dict:
        if isinstance(field, serializers.ReadOnlyField) and "." in field.source:
            return SimpleMetadata.get_field_info(self, field)
        return super().get_field_info(field)


class JsonApiPagination(JsonApiPageNumberPagination):
    """JSON:API ``page[number]``/``page[size]`` paging, on by default.

    The project sets no global ``PAGE_SIZE``, without which DRF would only
    paginate when the client sends ``page[size]``.
    """

    page_size = 20


class JsonApiSearchFilter(SearchFilter):
    """DRF search under the JSON:API-legal name ``filter[search]``.

    A bare ``?search=`` would be rejected by QueryParameterValidationFilter.
    """

    search_param = "filter[search]"


class JsonApiMixin:
    """JSON:API parser, renderer, metadata, pagination, filters and errors.

    The exception handler is chosen per view (instead of the global
    ``EXCEPTION_HANDLER`` setting) so the plain DRF views keep DRF's error format.
    """

    parser_classes = (JSONParser,)
    renderer_classes = (JSONRenderer, BrowsableAPIRenderer)
    metadata_class = ArticleAwareMetadata
    pagination_class = JsonApiPagination
    filter_backends = (QueryParameterValidationFilter, OrderingFilter, JsonApiSearchFilter)
    permission_classes = (permissions.IsAuthenticatedOrReadOnly, IsAuthorOrReadOnly)

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return jsonapi_exception_handler


class ArticleResourceViewSet(JsonApiMixin, views.ModelViewSet):
    """Articles as JSON:API resources (type ``articles``).

    The type comes from the serializer/model rather than a ``resource_name``
    on the view, because a view-level name would also label the comments
    returned by the related endpoint ``/jsonapi/articles/<pk>/comments/``.
    """

    queryset = Article.objects.select_related("author").prefetch_related("comments")
    serializer_class = ArticleResourceSerializer
    ordering_fields = ("id", "title", "created")
    search_fields = ("title",)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save(author=self.request.user)


class CommentResourceViewSet(JsonApiMixin, views.ModelViewSet):
    """Comments as JSON:API resources (type ``comments``)."""

    queryset = Comment.objects.select_related("author", "article")
    serializer_class = CommentResourceSerializer
    ordering_fields = ("id", "created")
    search_fields = ("text",)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save(author=self.request.user)


class ArticleRelationshipView(JsonApiMixin, views.RelationshipView):
    """``/jsonapi/articles/<pk>/relationships/<related_field>/``; writes are author-only."""

    queryset = Article.objects.all()
    self_link_view_name = "jsonapi-article-relationships"
    pagination_class = None
    filter_backends = ()

    def get_links(self) -> dict[str, Any]:
        """Add the related link; the base class reverses it without ``related_field``."""
        links = super().get_links()
        related = self.get_url("related", "jsonapi-article-related", self.kwargs, self.request)
        if related:
            links["related"] = related
        return links
