"""JSON:API serializers (django-rest-framework-json-api) for ``/jsonapi/``."""

from __future__ import annotations

from rest_framework_json_api import serializers
from rest_framework_json_api.relations import ResourceRelatedField

from .models import Article, Comment


class CommentResourceSerializer(serializers.ModelSerializer):
    """Comment resource whose ``article`` relationship is writable.

    That lets a test create a comment from a JSON:API document that carries
    ``relationships.article.data``, through a batch and directly.
    """

    article = ResourceRelatedField(queryset=Article.objects.all())
    author = serializers.ReadOnlyField(source="author.username", default=None)

    included_serializers = {
        "article": "test_project.articles.jsonapi_serializers.ArticleResourceSerializer",
    }

    class Meta:
        model = Comment
        fields = ["text", "author", "created", "article"]
        resource_name = "comments"


class ArticleResourceSerializer(serializers.ModelSerializer):
    """Article resource with a read-only, linked ``comments`` relationship."""

    author = serializers.ReadOnlyField(source="author.username")
    comments = ResourceRelatedField(
        many=True,
        read_only=True,
        self_link_view_name="jsonapi-article-relationships",
        related_link_view_name="jsonapi-article-related",
    )

    included_serializers = {"comments": CommentResourceSerializer}
    related_serializers = {"comments": CommentResourceSerializer}

    class Meta:
        model = Article
        fields = ["title", "body", "author", "published", "created", "comments"]
        resource_name = "articles"
