"""The PATCH kinds kube-apiserver accepts: JSON merge, strategic merge, JSON patch, apply."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import yaml

from sandbox.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

# Lists that strategic merge patch merges by a key instead of replacing
# (their patchMergeKey in the Kubernetes API types).
MERGE_KEYS: dict[str, str] = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "addresses": "type",
    "ports": "containerPort",
    "tolerations": "",  # atomic in the API: replaced whole
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, key: str = "") -> Any:
    """Merge patch, except that known lists merge element-wise by their merge key."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for k, value in patch.items():
            if k.startswith("$"):
                continue
            if value is None:
                result.pop(k, None)
            else:
                result[k] = strategic_merge_patch(result.get(k), value, k)
        return result
    if isinstance(patch, list) and MERGE_KEYS.get(key) and isinstance(target, list):
        merge_key = MERGE_KEYS[key]
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                return copy.deepcopy(patch)
            index = next((i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    merged.pop(index)
            elif index is None:
                merged.append({k: v for k, v in item.items() if not k.startswith("$")})
            else:
                merged[index] = strategic_merge_patch(merged[index], item, key)
        return merged
    return copy.deepcopy(patch)


def apply_patch(current: dict[str, Any], body: bytes, content_type: str) -> Any:
    """``current`` with the patch in ``body`` applied (JSON of any shape: the store refuses what is not an object);
    400/422 for a malformed patch."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == APPLY_PATCH:
            patch = yaml.safe_load(body.decode() or "{}")
        else:
            import json

            patch = json.loads(body or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"error decoding patch: {exc}") from None
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            return jsonpatch.apply_patch(current, patch)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from None
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    if kind == MERGE_PATCH:
        return merge_patch(current, patch)
    if kind in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        return strategic_merge_patch(current, patch)
    raise ApiError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
    )
