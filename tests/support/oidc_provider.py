"""A real OpenID Connect provider in a process of its own, for the single sign-on tests and ``make run``'s demo.

Built on Authlib's provider classes (``authlib.integrations.flask_oauth2.AuthorizationServer``, the
authorization code grant with its ``OpenIDCode`` and PKCE ``CodeChallenge`` extensions) in a small Flask app:
discovery, a sign-in form, the token endpoint, JWKS with RSA keys it makes at start, RP-initiated logout.

Test controls (JSON, no authentication: the provider listens on 127.0.0.1 only):

- ``PUT /control/users/<name>`` ``{"groups": [...], "password": "..."}`` adds or changes a person;
- ``POST /control/rotate``: a new signing key (the JWKS then lists it first, the old one after it);
- ``POST /control/next-token`` ``{"fault": F}``: the next ID token is made wrong on purpose, F one of
  ``bad-signature`` (signed by a key not in the JWKS, under a published key id), ``wrong-audience``,
  ``expired``, ``wrong-issuer``, ``replay-nonce`` (carries the nonce of the sign-in before);
- ``GET /control/log``: the sign-ins, tokens and logouts it served.

Run: ``python -m tests.support.oidc_provider --port 9400 --client-id pksweb --client-secret S
--redirect-uri http://127.0.0.1:8000/accounts/oidc/callback/`` (``--user name:password:group,group``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, redirect, request, session
from joserfc.jwk import RSAKey

FAULTS = ("bad-signature", "wrong-audience", "expired", "wrong-issuer", "replay-nonce")
FORM = """<!doctype html><title>Demo identity provider</title><h1>Demo identity provider</h1>
<form method="post"><label>User <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button></form><p id="error">{error}</p>"""


@dataclass
class Person:
    name: str
    password: str
    groups: list[str]
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in ("openid", "profile", "email", "groups"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    person: Person
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return ""

    def get_amr(self) -> list[str]:
        return []


class State:
    """Everything the provider knows, behind one lock (Flask serves requests in threads)."""

    def __init__(self, issuer: str, client: Client) -> None:
        self.issuer, self.client = issuer, client
        self.lock = threading.Lock()
        self.people: dict[str, Person] = {}
        self.codes: dict[str, Code] = {}
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "RS256"})]
        self.fault = ""
        self.nonces: list[str] = []
        self.log: list[dict[str, Any]] = []

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys[:2]]}


def build(issuer: str, client: Client) -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(16)
    app.config["SESSION_COOKIE_NAME"] = "demo_idp"  # not pksweb's cookie name, on the same 127.0.0.1
    state = State(issuer, client)
    app.config["STATE"] = state

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            with state.lock:
                state.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.payload.scope, req.user,
                                         req.payload.data.get("nonce"), req.payload.data.get("code_challenge"),
                                         req.payload.data.get("code_challenge_method"), int(time.time()))

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> Person:
            return authorization_code.person

    class IdToken(OpenIDCode):
        """Authlib makes the ID token; these hooks give it the key, the claims, and the faults tests ask for."""

        def exists_nonce(self, nonce: str, req: Any) -> bool:
            return any(c.nonce == nonce for c in state.codes.values())

        def _fault(self) -> str:
            return getattr(request, "_fault", "")

        def resolve_client_private_key(self, client: Client) -> RSAKey:
            if self._fault() == "bad-signature":  # the same key id, another key: only the signature gives it away
                return RSAKey.generate_key(2048, parameters={"kid": state.keys[0].kid})
            return state.keys[0]

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(state.keys[0].kid)}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            now, fault = int(time.time()), self._fault()
            # wrong-audience names pksweb as the authorized party: only a check of "aud" itself refuses it
            return {**({"azp": client.client_id} if fault == "wrong-audience" else {}), "iss": "https://elsewhere.invalid" if fault == "wrong-issuer" else state.issuer,
                    "aud": ["someone-else"] if fault == "wrong-audience" else [client.client_id],
                    "iat": now - 7200 if fault == "expired" else now, "exp": now - 3600 if fault == "expired" else now + 300}

        def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
            claims = super().get_authorization_code_claims(authorization_code)
            if self._fault() == "replay-nonce" and len(state.nonces) > 1:
                claims["nonce"] = state.nonces[-2]
            return claims

        def generate_user_info(self, user: Person, scope: str) -> UserInfo:
            return UserInfo(sub=user.sub, preferred_username=user.name, email=f"{user.name}@example.test", groups=list(user.groups))

    server = AuthorizationServer(app, query_client=lambda cid: client if cid == client.client_id else None,
                                 save_token=lambda token, req: None)
    server.register_grant(CodeGrant, [IdToken(require_nonce=True), CodeChallenge(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify({
            "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks", "end_session_endpoint": f"{issuer}/logout",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(state.jwks())

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        person = state.people.get(session.get("user", ""))
        if request.method == "POST":
            person = state.people.get(request.form.get("username", ""))
            if person is None or not secrets.compare_digest(person.password, request.form.get("password", "")):
                return FORM.format(error="Wrong user or password."), 200
            session["user"] = person.name
        if person is None:
            return FORM.format(error=""), 200
        nonce = request.args.get("nonce", "")
        with state.lock:
            state.nonces.append(nonce)
            state.log.append({"event": "authorize", "user": person.name, "pkce": request.args.get("code_challenge_method")})
        return server.create_authorization_response(grant_user=person)

    @app.post("/token")
    def token() -> Any:
        with state.lock:
            request._fault, state.fault = state.fault, ""  # type: ignore[attr-defined]
            state.log.append({"event": "token", "fault": request._fault})  # type: ignore[attr-defined]
        return server.create_token_response()

    @app.get("/logout")
    def logout() -> Any:
        state.log.append({"event": "logout", "user": session.pop("user", ""), "hint": bool(request.args.get("id_token_hint"))})
        back = request.args.get("post_logout_redirect_uri", "")
        return redirect(back) if back.startswith(tuple(u.split("/accounts/")[0] for u in client.redirect_uris)) else "Signed out."

    @app.put("/control/users/<name>")
    def control_user(name: str) -> Any:
        body = request.get_json(force=True)
        with state.lock:
            person = state.people.setdefault(name, Person(name, body.get("password", name), []))
            person.groups = list(body.get("groups", person.groups))
            person.password = body.get("password", person.password)
        return jsonify({"name": name, "sub": person.sub, "groups": person.groups})

    @app.post("/control/rotate")
    def control_rotate() -> Any:
        with state.lock:
            state.keys.insert(0, RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "RS256"}))
        return jsonify({"kid": state.keys[0].kid})

    @app.post("/control/next-token")
    def control_fault() -> Any:
        fault = request.get_json(force=True).get("fault", "")
        if fault not in FAULTS:
            return jsonify({"error": f"fault is one of {FAULTS}"}), 400
        state.fault = fault
        return jsonify({"fault": fault})

    @app.get("/control/log")
    def control_log() -> Any:
        return jsonify(state.log)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--client-id", default="pksweb")
    parser.add_argument("--client-secret", default="pksweb-demo-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--user", action="append", default=[], help="name:password:group,group")
    args = parser.parse_args(argv)
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on loopback, for tests and the demo only
    issuer = f"http://{args.host}:{args.port}"
    app = build(issuer, Client(args.client_id, args.client_secret, args.redirect_uri))
    for spec in args.user:
        name, password, groups = (spec.split(":", 2) + ["", ""])[:3]
        app.config["STATE"].people[name] = Person(name, password, [g for g in groups.split(",") if g])
    print(f"provider ready at {issuer}", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
