"""Plain DRF serializers for the ``/api/`` endpoints."""

from __future__ import annotations

from rest_framework import serializers

from .models import Article, Comment


class ArticleSerializer(serializers.ModelSerializer):
    """Article with the author shown as a read-only username."""

    author = serializers.ReadOnlyField(source="author.username")

    class Meta:
        model = Article
        fields = ["id", "title", "body", "author", "published", "created"]


class CommentSerializer(serializers.ModelSerializer):
    """Comment pointing at its article by primary key."""

    author = serializers.ReadOnlyField(source="author.username", default=None)

    class Meta:
        model = Comment
        fields = ["id", "article", "text", "author", "created"]
