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


def _describe(target: str, **schema: object) -> None:
    """Register an extension that hands drf-spectacular ``target`` with ``extend_schema``."""
    name = target.rsplit(".", 1)[1]

    def view_replacement(self: OpenApiViewExtension) -> type:
        return extend_schema(**schema)(type(name, (self.target_class,), {}))

    # Subclassing registers the extension with drf-spectacular.
    type(f"{name}Schema", (OpenApiViewExtension,),
         {"target_class": target, "view_replacement": view_replacement})


_describe("test_project.articles.api.PingView",
          responses=_shape("Pong", pong=serializers.BooleanField()))
_describe("test_project.articles.api.MeView",
          responses=_shape("Me", username=serializers.CharField(),
                           id=serializers.IntegerField(),
                           auth=serializers.CharField(allow_null=True)))
_describe("test_project.articles.api.ThrottledView",
          responses=_shape("Throttled", ok=serializers.BooleanField()))
_describe("test_project.articles.api.AttachmentUploadView",
          request=_shape("AttachmentUpload", file=serializers.FileField(),
                         article=serializers.IntegerField(required=False)),
          responses={201: _shape("Attachment", id=serializers.IntegerField(),
                                 name=serializers.CharField(),
                                 size=serializers.IntegerField())})


class ArticleResourceViewSetSchema(OpenApiViewExtension):
    """``retrieve_related`` would otherwise share the operationId of ``retrieve``."""

    target_class = "test_project.articles.jsonapi.ArticleResourceViewSet"

    def view_replacement(self) -> type:
        class Described(self.target_class):
            @extend_schema(operation_id="jsonapi_articles_related_retrieve")
            def retrieve_related(self, request, *args, **kwargs):
                return super().retrieve_related(request, *args, **kwargs)

        return Described
