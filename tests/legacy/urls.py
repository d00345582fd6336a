from django.urls import re_path

from batch_requests.views import handle_batch_requests
from tests.legacy.test_views import SimpleView, EchoHeaderView, ExceptionView,\
    SleepingView


urlpatterns = [
                       re_path(r'^views/', SimpleView.as_view()),
                       re_path(r'^echo/', EchoHeaderView.as_view()),
                       re_path(r'^exception/', ExceptionView.as_view()),
                       re_path(r'^sleep/', SleepingView.as_view()),
                       re_path(r'^api/v1/batch/', handle_batch_requests),
                       ]
