"""Static files storage for production: hashed, compressed names from `collectstatic`."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]  # whitenoise has no types
    """A page must not fail because `collectstatic` was forgotten: without a manifest entry
    the plain name is used (the asset is then missing, and the README says to collect)."""

    manifest_strict = False
