"""A gateway holds verification keys only; a key file it cannot use is refused by name."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from wire import GatewayFactory, Keys, connect, recv_json

from gamesync.errors import ConfigError
from gamesync.keys import generate_key, refuse_signing_keys, sign_token, write_key_dir
from gamesync.keystore import KeyStore


def _jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_private_key_is_refused_naming_its_kid_and_members(alg: str) -> None:
    private, _ = generate_key(alg, kid="k1")
    with pytest.raises(ConfigError) as refused:
        refuse_signing_keys({"keys": [private]}, allow_hs256=False)
    message = str(refused.value)
    assert "'k1' holds private key material (" in message
    assert "d" in message.split("(")[1]
    assert "never a signer file" in message


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_public_keys_pass(alg: str) -> None:
    _, public = generate_key(alg)
    refuse_signing_keys({"keys": [public]}, allow_hs256=False)


def test_an_hs256_secret_needs_the_explicit_opt_in() -> None:
    secret, _ = generate_key("HS256", kid="shared")
    with pytest.raises(ConfigError, match=r"'shared' is an HS256 shared secret.*--allow-hs256"):
        refuse_signing_keys({"keys": [secret]}, allow_hs256=False)
    refuse_signing_keys({"keys": [secret]}, allow_hs256=True)


def test_the_opt_in_does_not_admit_private_asymmetric_keys() -> None:
    private, _ = generate_key("ES256")
    with pytest.raises(ConfigError, match="private key material"):
        refuse_signing_keys({"keys": [private]}, allow_hs256=True)


def test_a_signer_file_given_as_keys_is_refused_at_start(tmp_path: Path) -> None:
    _, signer = write_key_dir(tmp_path, "ES256")
    store = KeyStore()
    with pytest.raises(ConfigError) as refused:
        store.watch(signer, interval=1)
    message = str(refused.value)
    assert message.startswith(f"cannot load keys from {signer}: key ")
    assert "private key material" in message
    assert "\n" not in message
    assert store.keyset is None


def test_a_truncated_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    jwks, _ = write_key_dir(tmp_path, "ES256")
    jwks.write_bytes(jwks.read_bytes()[:20])
    with pytest.raises(ConfigError) as refused:
        KeyStore().watch(jwks, interval=1)
    message = str(refused.value)
    assert message.startswith(f"cannot load keys from {jwks}: not valid JSON (")
    assert "\n" not in message


def test_a_reload_bringing_private_material_keeps_the_last_good_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private, public = generate_key("ES256", kid="good")
    path = tmp_path / "jwks.json"
    path.write_bytes(_jwks(public))
    store = KeyStore()
    watcher = store.watch(path, interval=1)
    replacement = tmp_path / "next.json"
    replacement.write_bytes(_jwks(private))
    os.replace(replacement, path)  # a new inode: the watcher sees a change
    with caplog.at_level(logging.ERROR, logger="gamesync.keys"):
        assert watcher.check()
    assert store.kids == ["good"]
    assert store.reload_failures == 1
    assert f"key file {path} refused" in caplog.text
    assert "private key material" in caplog.text


async def test_a_gateway_verifies_hs256_tokens_only_when_allowed(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    secret, _ = generate_key("HS256", kid="shared")
    path = tmp_path / "hs256.json"
    path.write_bytes(_jwks(secret))
    with pytest.raises(ConfigError, match="--allow-hs256"):
        await gateway_factory(keys=path)
    server = await gateway_factory(keys=path, allow_hs256=True)
    token = sign_token({"keys": [secret], "active": "shared"}, "7")
    async with await connect(server, token=token) as ws:
        assert (await recv_json(ws))["userId"] == "7"


async def _gateway_stderr(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gamesync",
        "gateway",
        "--port",
        "0",
        "--internal-port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_the_gateway_command_refuses_a_signer_file_in_one_line(tmp_path: Path) -> None:
    _, signer = write_key_dir(tmp_path, "ES256")
    code, err = await _gateway_stderr("--keys", str(signer))
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"gamesync gateway: cannot load keys from {signer}: key ")
    assert "private key material" in err


async def test_the_gateway_command_names_a_truncated_key_file(keys: Keys, tmp_path: Path) -> None:
    broken = tmp_path / "jwks.json"
    broken.write_bytes(keys.jwks_path.read_bytes()[:20])
    code, err = await _gateway_stderr("--keys", str(broken))
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"gamesync gateway: cannot load keys from {broken}: not valid JSON")
