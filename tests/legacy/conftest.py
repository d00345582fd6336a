# Port (see README.md): the 2015 suite configured Django itself, in pytest_configure with
# settings.configure(...). Under pytest-django the project's settings (test_project.settings)
# are configured already, so each test of this directory gets, through override_settings,
# the two settings of that configure() call that the suite's tests depend on: its test urls
# and its BATCH_REQUESTS, with the 2015 values. Its other settings (an in-memory SQLite
# database, MIDDLEWARE_CLASSES, INSTALLED_APPS with 'tests', DEBUG_PROPAGATE_EXCEPTIONS, ...)
# are not applied; the project's own stand in for them.
import pytest
from django.test import override_settings

SUITE_SETTINGS = dict(
        ROOT_URLCONF='tests.legacy.urls',
        BATCH_REQUESTS = {
            "HEADERS_TO_INCLUDE": ["HTTP_USER_AGENT", "HTTP_COOKIE"],
            "DEFAULT_CONTENT_TYPE": "application/xml",
            "USE_HTTPS": True,
            "MAX_LIMIT": 3
        }
)


@pytest.fixture(autouse=True)
def suite_settings():
    with override_settings(**SUITE_SETTINGS):
        yield
