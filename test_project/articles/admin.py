"""Admin registration, so the demo data can be inspected and the login page exists."""

from __future__ import annotations

from django.contrib import admin

from .models import Article, Attachment, Comment


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    """Lists articles with their owner, which decides who may edit them."""

    list_display = ("id", "title", "author", "published", "created")
    search_fields = ("title",)


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    """Lists comments with the article they hang off."""

    list_display = ("id", "article", "author", "created")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Lists uploaded files."""

    list_display = ("id", "file", "article", "created")
