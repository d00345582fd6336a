"""Shared fixtures: two users with tokens and a little content owned by them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token

from test_project.articles.models import Article, Comment


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Creating users with the default PBKDF2 hasher costs ~0.2 s each; tests need no strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """Reset DRF throttle counters (kept in the cache) so tests stay independent."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db: None) -> User:
    """Author of most of the content; password ``alice-password``."""
    return User.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(db: None) -> User:
    """A second user, who must not be able to edit alice's things."""
    return User.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def alice_token(alice: User) -> str:
    """DRF token key for alice, for ``Authorization: Token <key>``."""
    return Token.objects.create(user=alice).key


@pytest.fixture
def bob_token(bob: User) -> str:
    """DRF token key for bob."""
    return Token.objects.create(user=bob).key


@pytest.fixture
def articles(alice: User, bob: User) -> list[Article]:
    """``[alice's first, alice's second, bob's]``; bob commented on the first."""
    created = [
        Article.objects.create(title="Alice first", body="Hello from alice", author=alice),
        Article.objects.create(title="Alice second", body="More from alice", author=alice),
        Article.objects.create(title="Bob only", body="Hello from bob", author=bob),
    ]
    Comment.objects.create(article=created[0], author=bob, text="Nice one, alice")
    return created


@pytest.fixture
def comment(articles: list[Article]) -> Comment:
    """The one comment made by the ``articles`` fixture (bob on alice's first)."""
    return Comment.objects.get(article=articles[0])
