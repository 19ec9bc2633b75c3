"""Sign-in pages: the login page (single sign-on button, password form), the round trip through the
identity provider, and sign-out, which ends the provider's session too when it supports RP-initiated logout.

These pages are for whoever is not signed in yet; who may do what afterwards is the policy's
(``pksweb.policy``), from the role and memberships the sign-in service sets.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET
from joserfc.errors import JoseError

from pksweb.oidc import client
from pksweb.oidc.services import sso_failure_record, sso_sign_in
from pksweb.text import bound

log = logging.getLogger(__name__)
ERROR_KEY, NEXT_KEY, ID_TOKEN_KEY = "pksweb_sso_error", "pksweb_sso_next", "pksweb_oidc_id_token"
BACKEND = "pksweb.oidc.backends.LocalPasswordBackend"
# What a failed round trip can raise: Authlib's protocol errors (state, token endpoint), the ID token's
# checks (joserfc: signature, claims), the provider unreachable, a malformed answer.
PROTOCOL_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException, ValueError, KeyError, TypeError, RuntimeError)


class LoginPage(auth_views.LoginView):
    """The login page: "Sign in with single sign-on" when it is configured (saying so when the provider does
    not answer), and the password form (only the break-glass account's when local sign-in is off)."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        oidc = client.config()
        error = self.request.session.pop(ERROR_KEY, "")
        problem = client.provider_problem(oidc) if oidc.enabled else ""
        context["sso"] = {"enabled": oidc.enabled, "problem": problem, "error": error, "local_login": oidc.local_login,
                          "break_glass_user": oidc.break_glass_user}
        return context


def _fail(request: HttpRequest, message: str, reason: str) -> HttpResponse:
    sso_failure_record(reason=bound(reason, 400))
    request.session[ERROR_KEY] = message
    return redirect("login")


@require_GET
def oidc_login(request: HttpRequest) -> HttpResponse:
    """Send the browser to the provider (state, nonce and PKCE verifier kept in the session)."""
    oidc = client.config()
    if not oidc.enabled:
        raise Http404("single sign-on is not configured")
    wanted = request.GET.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        request.session[NEXT_KEY] = wanted
    problem = client.provider_problem(oidc)
    if problem:
        return _fail(request, problem + " Try again later; the break-glass account signs in with its password.", problem)
    try:
        response: HttpResponse = client.app(oidc).authorize_redirect(request, request.build_absolute_uri(reverse("oidc_callback")))
    except PROTOCOL_ERRORS as error:
        return _fail(request, f"The identity provider at {oidc.issuer} could not be asked ({type(error).__name__}).",
                     f"discovery failed: {type(error).__name__}: {error}")
    return response


@require_GET
def oidc_callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back with a code: exchange it, check the ID token, sign the person in
    with the role and memberships their groups give now."""
    oidc = client.config()
    if not oidc.enabled:
        raise Http404("single sign-on is not configured")
    try:
        token = client.app(oidc).authorize_access_token(request, claims_options=client.claims_options(oidc))
        claims = token.get("userinfo")
        if not claims:
            raise ValueError("the token endpoint sent no ID token")
    except PROTOCOL_ERRORS as error:
        log.warning("single sign-on refused: %s: %s", type(error).__name__, error)
        return _fail(request, "Single sign-on failed: the identity provider's answer was refused "
                     f"({bound(str(error) or type(error).__name__, 200)}). Try again.", f"{type(error).__name__}: {error}")
    outcome = sso_sign_in(config=oidc, claims=dict(claims))
    if outcome.user is None:
        request.session[ERROR_KEY] = outcome.refusal
        return redirect("login")
    user = outcome.user
    next_url = request.session.pop(NEXT_KEY, "")
    login(request, user, backend=BACKEND)
    request.session[ID_TOKEN_KEY] = token.get("id_token", "")
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


class LogoutPage(auth_views.LogoutView):
    """Sign out (POST); a person who came through the provider is sent to its end-session endpoint as well,
    when its discovery document names one, and comes back to the login page."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        id_token = request.session.get(ID_TOKEN_KEY, "")
        response: HttpResponse = super().post(request, *args, **kwargs)
        oidc = client.config()
        if not (id_token and oidc.enabled):
            return response
        try:
            app = client.app(oidc)
            if not app.load_server_metadata().get("end_session_endpoint"):
                return response
            ended: HttpResponse = app.logout_redirect(request, post_logout_redirect_uri=request.build_absolute_uri(reverse("login")),
                                                      id_token_hint=id_token, client_id=oidc.client_id)
            return ended
        except PROTOCOL_ERRORS as error:  # signed out here all the same; the provider's session stays
            log.warning("could not end the provider's session: %s", error)
            return response
