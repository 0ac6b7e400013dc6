"""Service tokens through real gunicorn: pinned algorithm, required claims, kid rotation,
scopes per route; and in-process: the leeway on ``exp`` and the asymmetric (EdDSA, RS256)
configurations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.api import (
    ALL_SCOPES,
    CURRENT_KID,
    PREVIOUS_KID,
    PREVIOUS_SECRET,
    USERS,
    FailingBridge,
    ServedApi,
    make_token,
)
from tests.support.settings import SettingsFactory
from yabot.api import auth
from yabot.api.app import create_app
from yabot.api.auth import TokenVerifier, mint_token
from yabot.cli import main
from yabot.errors import ConfigError, Unauthorized, UserNotFound

USER = USERS[0]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict[str, object]) -> str:
    """A token with ``alg: none``."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': CURRENT_KID})}.{_b64(claims)}."


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {"iss": "yabot", "aud": "yabot-api", "sub": "x", "iat": now, "exp": now + 60,
            "scope": "users:read"}


BAD_TOKENS: dict[str, Callable[[], str]] = {
    "alg-none": lambda: _unsigned(_claims()),
    "wrong-key": lambda: make_token(secret="not-our-secret-" + "z" * 40),
    "expired": lambda: make_token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "wrong-audience": lambda: make_token(aud="another-api"),
    "wrong-issuer": lambda: make_token(iss="someone"),
    "no-exp": lambda: make_token(exp=None),
    "no-iat": lambda: make_token(iat=None),
    "no-sub": lambda: make_token(sub=None),
    "unknown-kid": lambda: make_token(kid="k9"),
    "previous-kid-current-key": lambda: make_token(kid=PREVIOUS_KID),
    "hs512": lambda: make_token(algorithm="HS512"),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case
@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_token_is_401_problem_without_details(api: ServedApi, name: str) -> None:
    token = BAD_TOKENS[name]()
    response = api.call("GET", f"/user/{USER}/state", token=token)
    assert response.status == 401, response.body
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["type"] == "/problems/unauthorized"
    assert token not in response.body.decode()
    assert "Traceback" not in response.body.decode()


def test_missing_authorization_is_401(api: ServedApi) -> None:
    assert api.call("GET", f"/user/{USER}/state").status == 401
    basic = api.call("GET", f"/user/{USER}/state", headers={"Authorization": "Basic eDp5"})
    assert basic.status == 401


def test_current_and_previous_keys_are_both_valid_during_rotation(api: ServedApi) -> None:
    current = make_token(["users:read"], kid=CURRENT_KID)
    previous = make_token(["users:read"], kid=PREVIOUS_KID, secret=PREVIOUS_SECRET)
    no_kid = make_token(["users:read"], kid=None)  # verified with the current key
    for token in (current, previous, no_kid):
        response = api.call("GET", f"/user/{USER}/state", token=token)
        assert response.status == 200, response.body
        assert response.json()["document"]["user_id"] == USER


ROUTES = [
    ("GET", f"/user/{USER}/state", None, "users:read"),
    ("PUT", f"/user/{USER}/preferences", b'{"language": "en", "notifications": true}',
     "users:write"),
    ("GET", f"/narrative/start?user_id={USER}", None, "narrative:read"),
    ("POST", f"/user/{USER}/besitos", b'{"kind": "earn", "amount": 1}', "besitos:write"),
    ("GET", f"/user/{USER}/subscription", None, "users:read"),
    ("PUT", f"/user/{USER}/subscription", b'{"plan": "free", "status": "cancelled"}',
     "subscriptions:write"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in ROUTES])
def test_each_route_needs_its_scope(
    api: ServedApi, method: str, path: str, body: bytes | None, scope: str
) -> None:
    others = [s for s in ALL_SCOPES if s != scope]
    response = api.call(method, path, token=make_token(others), json_body=body,
                        headers={"Idempotency-Key": "scope-test"})
    assert response.status == 403, response.body
    assert response.json()["type"] == "/problems/forbidden"
    assert scope in response.json()["detail"]


def test_public_routes_need_no_token(api: ServedApi) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert api.call("GET", path).status == 200, path


# ---- in-process: configuration and the asymmetric option ----------------------------------


@pytest.mark.parametrize(("leeway", "expired_ago", "accepted"), [
    (30, 5, True),  # a few seconds past exp, within the leeway
    (30, 90, False),  # beyond it
    (0, 5, False),  # the same age without a leeway: the leeway is what accepted it above
])
def test_a_token_past_exp_is_accepted_only_within_the_leeway(
    make_settings: SettingsFactory, leeway: int, expired_ago: int, accepted: bool
) -> None:
    verifier = TokenVerifier(make_settings(JWT_LEEWAY_SECONDS=str(leeway)))
    now = int(time.time())
    token = make_token(kid=None, iat=now - 300, exp=now - expired_ago)
    if accepted:
        assert verifier.verify(token)["sub"] == "tests"
    else:
        with pytest.raises(Unauthorized, match="expired"):
            verifier.verify(token)


def test_a_remembered_token_is_refused_once_past_exp_and_the_leeway(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(make_settings(JWT_LEEWAY_SECONDS="30"))
    now = int(time.time())
    token = make_token(kid=None, iat=now - 300, exp=now - 5)
    assert verifier.verify(token)["sub"] == "tests"  # verified, and remembered until exp
    # The verifier's own clock, moved past the token's exp + leeway (PyJWT is not asked again).
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now + 24))
    assert verifier.verify(token)["sub"] == "tests"
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now + 26))
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


AsymmetricKey = Ed25519PrivateKey | rsa.RSAPrivateKey
KEY_FACTORIES: dict[str, Callable[[], AsymmetricKey]] = {
    "EdDSA": Ed25519PrivateKey.generate,
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def _key_files(directory: Path, name: str, algorithm: str) -> tuple[Path, Path]:
    """A new private key for ``algorithm`` and its public key, as PEM files."""
    key = KEY_FACTORIES[algorithm]()
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.mark.parametrize("algorithm", sorted(KEY_FACTORIES))
def test_asymmetric_tokens_verify_and_hmac_tokens_do_not(
    make_settings: SettingsFactory, tmp_path: Path, algorithm: str
) -> None:
    private, public = _key_files(tmp_path, "current", algorithm)
    _, old_public = _key_files(tmp_path, "old", algorithm)
    settings = make_settings(
        JWT_SECRET="", JWT_ALGORITHM=algorithm, JWT_PUBLIC_KEY_FILE=str(public),
        JWT_PRIVATE_KEY_FILE=str(private), JWT_PREVIOUS_KEY_ID="old",
        JWT_PREVIOUS_PUBLIC_KEY_FILE=str(old_public),
    )
    verifier = TokenVerifier(settings)
    token = mint_token(settings, "svc", ["users:read"], 60)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert verifier.verify(token)["sub"] == "svc"
    # The classic confusion attack: HS256 keyed with the (public) PEM text.
    now = int(time.time())
    signing_input = _b64({"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "." + _b64(
        {"iss": "yabot", "aud": "yabot-api", "sub": "evil", "iat": now, "exp": now + 60})
    mac = hmac.new(public.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    confused = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    hs256 = make_token(["users:read"], kid="k1")  # a valid token of an HS256 deployment
    for refused in (confused, hs256):
        with pytest.raises(Unauthorized):
            verifier.verify(refused)
    # The same through the deployment's app: its own token passes authentication (the bridge
    # then answers 404), an HS256 one is 401.
    app = create_app(settings, FailingBridge(UserNotFound(USER)))
    client = falcon.testing.TestClient(app)
    for bearer, status in ((token, 404), (hs256, 401), (confused, 401)):
        result = client.simulate_get(f"/user/{USER}/state",
                                     headers={"Authorization": f"Bearer {bearer}"})
        assert result.status_code == status, result.text
    with pytest.raises(ConfigError, match="no signing key"):
        mint_token(settings, "svc", key_id="old")  # only its public key is configured


@pytest.mark.parametrize(
    "env",
    [
        {"JWT_ALGORITHM": "EdDSA"},  # JWT_SECRET (from the base) mixed with an asymmetric alg
        {"JWT_ALGORITHM": "RS256", "JWT_SECRET": ""},  # no public key file
        {"JWT_PREVIOUS_KEY_ID": "k0"},  # an id without its key
        {"JWT_PREVIOUS_KEY_ID": "k1", "JWT_PREVIOUS_SECRET": "s" * 40},  # same id as current
        {"JWT_ALGORITHM": "none"},
    ],
)
def test_inconsistent_jwt_configuration_is_refused_without_echoing_secrets(
    make_settings: SettingsFactory, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(**env)
    assert "JWT_" in str(raised.value)
    assert "x" * 40 not in str(raised.value)  # the test secret never appears


def test_yabot_token_mints_with_the_chosen_kid(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings(JWT_KEY_ID="new", JWT_PREVIOUS_KEY_ID="old", JWT_PREVIOUS_SECRET=PREVIOUS_SECRET)
    assert main(["token", "--sub", "billing", "--scope", "besitos:write,users:read",
                 "--ttl", "15m", "--kid", "old"]) == 0
    token = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(token)["kid"] == "old"
    claims = jwt.decode(token, PREVIOUS_SECRET, algorithms=["HS256"], audience="yabot-api")
    assert claims["sub"] == "billing"
    assert claims["scope"] == "besitos:write users:read"
    assert claims["exp"] - claims["iat"] == 900
    assert main(["token", "--sub", "x", "--scope", "users:admin"]) == 2
    assert "unknown scope" in capsys.readouterr().err
