"""Object permission shared by the DRF and JSON:API views."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView


class IsAuthorOrReadOnly(permissions.BasePermission):
    """Anyone may read; only the object's author may change or delete it.

    Used to prove a batch sub-request runs object permissions (403) exactly
    like a direct request.
    """

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return getattr(obj, "author_id", None) == request.user.pk
