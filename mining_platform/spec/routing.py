"""Which requests a canary challenger answers: a sticky share of entities and of request keys.

The share is a hash of (project, key, challenger version) mapped onto [0, 1): the same
entity always lands on the same side while the challenger stays the same version, a new
challenger version draws a new sample, and no state is kept anywhere. The endpoint
routes with it; the deployment's hit check uses it to find a key the canary answers.
"""

import hashlib
import json


def canary_position(project: str, key: object, version: str) -> float:
    """Where `key` (an entity id or a request key) falls in [0, 1) for this challenger version.

    JSON-encoded, so the entity 5 and the entity "5" are different keys, as they are different
    entities in MongoDB."""
    text = json.dumps([project, key, version], separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def routes_to_challenger(project: str, key: object, version: str, traffic: float) -> bool:
    return canary_position(project, key, version) < traffic
