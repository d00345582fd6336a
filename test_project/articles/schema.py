"""drf-spectacular descriptions of the demo views it cannot infer on its own.

Imported by ``test_project.urls`` only where drf-spectacular is installed. The views stay as
they are: these extensions hand drf-spectacular a described subclass at schema time only.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers


def _shape(component: str, **fields: serializers.Field) -> serializers.Serializer:
    return inline_serializer(component, fields)


class PingViewSchema(OpenApiViewExtension):
    target_class = "test_project.articles.api.PingView"

    def view_replacement(self) -> type:
        return extend_schema(responses=_shape("Pong", pong=serializers.BooleanField()))(
            type("PingView", (self.target_class,), {}))


class MeViewSchema(OpenApiViewExtension):
    target_class = "test_project.articles.api.MeView"

    def view_replacement(self) -> type:
        me = _shape("Me", username=serializers.CharField(), id=serializers.IntegerField(),
                    auth=serializers.CharField(allow_null=True))
        return extend_schema(responses=me)(type("MeView", (self.target_class,), {}))


class ThrottledViewSchema(OpenApiViewExtension):
    target_class = "test_project.articles.api.ThrottledView"

    def view_replacement(self) -> type:
        return extend_schema(responses=_shape("Throttled", ok=serializers.BooleanField()))(
            type("ThrottledView", (self.target_class,), {}))


class AttachmentUploadViewSchema(OpenApiViewExtension):
    target_class = "test_project.articles.api.AttachmentUploadView"

    def view_replacement(self) -> type:
        upload = _shape("AttachmentUpload", file=serializers.FileField(),
                        article=serializers.IntegerField(required=False))
        stored = _shape("Attachment", id=serializers.IntegerField(),
                        name=serializers.CharField(), size=serializers.IntegerField())
        return extend_schema(request=upload, responses={201: stored})(
            type("AttachmentUploadView", (self.target_class,), {}))


class ArticleResourceViewSetSchema(OpenApiViewExtension):
    """``retrieve_related`` would otherwise share the operationId of ``retrieve``."""

    target_class = "test_project.articles.jsonapi.ArticleResourceViewSet"

    def view_replacement(self) -> type:
        class Described(self.target_class):
            @extend_schema(operation_id="jsonapi_articles_related_retrieve")
            def retrieve_related(self, request, *args, **kwargs):
                return super().retrieve_related(request, *args, **kwargs)

        return Described
