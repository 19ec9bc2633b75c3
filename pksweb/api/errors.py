"""The API's errors: field-level messages a person can act on, and the one DRF exception handler."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from pksweb.nesting import TooDeep


def drf_error(exc: DjangoValidationError) -> ValidationError:
    """A service's refusal as DRF's 400 body: each message under the field it names, and what names no field
    (Django's ``__all__``) under DRF's ``non_field_errors``."""
    if hasattr(exc, "error_dict"):
        return ValidationError({("non_field_errors" if k == NON_FIELD_ERRORS else k): [str(m) for e in v for m in e.messages]
                                for k, v in exc.error_dict.items()})
    return ValidationError({"non_field_errors": exc.messages})


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus what services and request reading refuse:

    - a service's ``ValidationError`` becomes a 400 with each message under the field it names
      (views call services without catching it);
    - a body nested too deep (400) or too large (413), each answered in JSON saying so, never a
      500 or an HTML page.
    """
    if isinstance(exc, DjangoValidationError):
        exc = drf_error(exc)
    elif isinstance(exc, TooDeep):
        exc = ParseError(str(exc))
    elif isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge(f"The request body is larger than {limit // 1024} KiB, the most pksweb reads; "
                              "send less (a kubeconfig reduced to one context, for example).")
    return drf_exception_handler(exc, context)
