"""``manage.py seed_demo``: demo users, tokens and content, safe to run again."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token

from test_project.articles.models import Article, Comment

USERS: list[tuple[str, str, bool]] = [
    ("demo", "demo", True),
    ("alice", "alice-password", False),
    ("bob", "bob-password", False),
]

BATCH_EXAMPLE: dict[str, Any] = {
    "batch": [
        {"method": "get", "url": "/api/me/"},
        {"method": "get", "url": "/api/articles/"},
        {"method": "post", "url": "/api/articles/", "body": {"title": "From a batch"}},
    ]
}


class Command(BaseCommand):
    """Create the demo data idempotently, then print what to try."""

    help = "Create demo users (demo, alice, bob), their API tokens and a few articles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            help="where the demo server is being started (`make demo` starts it): "
            "the hints use this address and do not say to run runserver first",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tokens: dict[str, str] = {}
        for username, password, is_admin in USERS:
            user = self._ensure_user(username, password, is_admin)
            tokens[username] = Token.objects.get_or_create(user=user)[0].key
            self._ensure_content(user)

        body = json.dumps(BATCH_EXAMPLE)
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))
        for username, password, _ in USERS:
            self.stdout.write(f"  {username} / {password}  token: {tokens[username]}")
        self.stdout.write(f"\nDemo token: {tokens['demo']}")
        url = (options.get("url") or "http://127.0.0.1:8000/").rstrip("/") + "/"
        if options.get("url"):
            self.stdout.write(f"\nOpen {url} once the server below has started.")
        else:
            self.stdout.write(f"\nOpen {url} (run `manage.py runserver` first).")
        self.stdout.write("Or send a batch:\n")
        self.stdout.write(
            f"curl -s {url}api/v1/batch/ "
            f'-H "Authorization: Token {tokens["demo"]}" '
            "-H 'Content-Type: application/json' "
            f"-d '{body}'"
        )

    def _ensure_user(self, username: str, password: str, is_admin: bool) -> AbstractBaseUser:
        """Create the user once; an existing user keeps its password and flags."""
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.is_staff = is_admin
            user.is_superuser = is_admin
            user.save()
        return user

    def _ensure_content(self, user: AbstractBaseUser) -> None:
        """Give each user two articles with a comment, unless they have articles."""
        if Article.objects.filter(author=user).exists():
            return
        name = user.get_username()
        for number in (1, 2):
            article = Article.objects.create(
                title=f"{name.capitalize()}'s article {number}",
                body=f"Demo article number {number} written by {name}.",
                author=user,
            )
            Comment.objects.create(article=article, author=user, text=f"First comment by {name}.")
