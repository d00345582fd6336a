"""Small data model: enough relations to exercise plain views, DRF and JSON:API."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Article(models.Model):
    """An article owned by a user; ownership drives the object permission tests."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="articles"
    )
    published = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    class JSONAPIMeta:
        """JSON:API type, plural as in the URLs (the default would be ``article``)."""

        resource_name = "articles"

    def __str__(self) -> str:
        return self.title


class Comment(models.Model):
    """A comment on an article; the JSON:API relationship tests create these."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="comments",
    )
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    class JSONAPIMeta:
        """JSON:API type, plural as in the URLs (the default would be ``comment``)."""

        resource_name = "comments"

    def __str__(self) -> str:
        return self.text[:50]


class Attachment(models.Model):
    """An uploaded file, so multipart bodies can be checked inside a batch."""

    article = models.ForeignKey(
        Article,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="attachments",
    )
    file = models.FileField(upload_to="attachments/")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.file.name


class LoginFailure(models.Model):
    """One wrong password for ``username``: the failure counter of ``/attack/login/``.

    Security bookkeeping kept in the default database, which an atomic batch's rollback
    would erase; see ``batch_requests.policies``.
    """

    username = models.CharField(max_length=150, db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.username
