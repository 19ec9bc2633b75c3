"""Single sign-on through an OpenID Connect provider (Authlib's client): settings, group mapping, the
sign-in service and its pages. Off unless ``PKSWEB_OIDC_ISSUER`` is set."""
