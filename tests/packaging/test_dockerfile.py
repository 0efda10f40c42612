"""Dockerfile checks that need no engine: sources, stages, user, pins, final-stage contents."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gamesync_operator import desired
from gamesync_operator.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
FINAL_TARGETS = ("gateway", "operator")


@dataclass
class Stage:
    """One FROM ... AS name block: its base, and its instructions as (keyword, arguments)."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    """Instructions with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "dangling line continuation"
    return lines


def _parse() -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults, and the stages by name."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in _logical_lines(DOCKERFILE.read_text()):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", arguments.strip(), re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            stage = Stage(name=match.group(2), base=match.group(1))
            stages[stage.name] = stage
        elif stage is None:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = arguments.partition("=")
            global_args[name.strip()] = default.strip()
        else:
            stage.instructions.append((keyword, arguments.strip()))
    return global_args, stages


GLOBAL_ARGS, STAGES = _parse()


def _chain(name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [STAGES[name]]
    while chain[-1].base in STAGES:
        chain.append(STAGES[chain[-1].base])
    return chain


def _resolve(image: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: GLOBAL_ARGS[m.group(1)], image)


def test_both_image_targets_exist() -> None:
    assert set(FINAL_TARGETS) <= set(STAGES)


def test_every_copied_source_exists() -> None:
    copied = 0
    for stage in STAGES.values():
        for arguments in stage.args("COPY"):
            parts = shlex.split(arguments)
            if any(p.startswith("--from") for p in parts):
                continue
            sources = [p for p in parts[:-1] if not p.startswith("--")]
            for source in sources:
                assert list(ROOT.glob(source)), f"COPY {source}: no such file in the repository"
                copied += 1
    assert copied >= 3


def _dockerignore_allows(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    allowed = True
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negated, pattern in patterns:
        pattern = pattern.rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes) or (
            pattern.startswith("**/") and re.fullmatch(fnmatch.translate(pattern[3:]), parts[-1])
        ):
            allowed = negated
    return allowed


def test_dockerignore_admits_what_is_copied_and_nothing_heavy() -> None:
    patterns = [
        (line.startswith("!"), line.removeprefix("!"))
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in STAGES.values():
        for arguments in stage.args("COPY"):
            parts = shlex.split(arguments)
            if any(p.startswith("--from") for p in parts):
                continue
            for source in parts[:-1]:
                for path in ROOT.glob(source):
                    files = [path] if path.is_file() else [f for f in path.rglob("*.py")]
                    for file in files:
                        rel = file.relative_to(ROOT).as_posix()
                        if "__pycache__" not in rel:
                            assert _dockerignore_allows(rel, patterns), f"{rel} is ignored"
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/charts/conftest.py"):
        assert not _dockerignore_allows(heavy, patterns), f"{heavy} reaches the build context"
    assert not _dockerignore_allows("gateway/gamesync/__pycache__/x.pyc", patterns)


def _user(target: str) -> str:
    for stage in _chain(target):
        users = stage.args("USER")
        if users:
            return users[-1]
    return "root"


def test_final_images_run_as_a_numeric_non_root_user() -> None:
    """Numeric, so that the kubelet can check runAsNonRoot; the same uid as the chart's."""
    values = yaml.safe_load((ROOT / "charts/gamesync-operator/values.yaml").read_text())
    for target in FINAL_TARGETS:
        uid, _, gid = _user(target).partition(":")
        assert uid.isdigit(), f"{target}: USER {uid} is not numeric"
        assert int(uid) != 0
        assert gid.isdigit()
        assert int(uid) == values["podSecurityContext"]["runAsUser"]


def test_base_images_are_pinned() -> None:
    """An exact patch release or a digest; never latest, never a floating minor tag."""
    externals = [_resolve(s.base) for s in STAGES.values() if s.base not in STAGES]
    assert externals
    for image in externals:
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name, f"{image} has no tag"
        pinned = "@sha256:" in image or re.match(r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$", tag)
        assert pinned, f"{image} is not pinned to an exact version or digest"


def test_final_stages_carry_no_build_tools() -> None:
    """No compiler or package manager installs, installs from the wheelhouse only, pip removed."""
    build_tools = re.compile(r"apt-get|apk add|gcc|build-essential|\bmake\b|pip wheel|git ")
    for target in FINAL_TARGETS:
        runs = [run for stage in _chain(target) for run in stage.args("RUN")]
        for run in runs:
            assert not build_tools.search(run), f"{target}: {run}"
        installs = [run for run in runs if "pip install" in run]
        assert installs, f"{target} installs nothing"
        for run in installs:
            assert "--no-index" in run
            assert "from=builder" in run
            assert re.search(r"pip uninstall --yes pip setuptools wheel\s*$", run)
        assert not [a for s in _chain(target) for a in s.args("COPY") if "--from=builder" not in a]


def test_no_healthcheck_kubernetes_probes_instead() -> None:
    assert all(not stage.args("HEALTHCHECK") for stage in STAGES.values())


def test_images_carry_oci_labels() -> None:
    required = {"title", "description", "source", "version", "revision", "licenses"}
    for target in FINAL_TARGETS:
        labels = " ".join(a for s in _chain(target) for a in s.args("LABEL"))
        found = set(re.findall(r"org\.opencontainers\.image\.([a-z]+)=", labels))
        assert required <= found, f"{target} lacks {required - found}"


def _exec_form(stage: Stage, keyword: str) -> list[str]:
    values: list[str] = json.loads(stage.args(keyword)[-1])
    return values


def test_entrypoints_match_what_the_chart_and_operator_run() -> None:
    """`gamesync` is the entrypoint; the chart passes `operator ...`, the operator `gateway`."""
    for target in FINAL_TARGETS:
        assert _exec_form(STAGES[target], "ENTRYPOINT") == ["gamesync"]
    assert _exec_form(STAGES["gateway"], "CMD")[0] == "gateway"
    assert _exec_form(STAGES["operator"], "CMD")[0] == "operator"
    template = (ROOT / "charts/gamesync-operator/templates/deployment.yaml").read_text()
    assert re.search(r"args:\n\s+- operator\n", template)


def _env(target: str) -> dict[str, str]:
    """ENV the final image carries (KEY=VALUE form, later stages win)."""
    env: dict[str, str] = {}
    for stage in reversed(_chain(target)):
        for arguments in stage.args("ENV"):
            for item in shlex.split(arguments):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_the_gateway_image_runs_a_production_gateway_by_default() -> None:
    """The default command verifies tokens with a mounted JWKS (no keys: it refuses to start);
    nothing in the image selects dev mode, an open policy, or the demo feed."""
    command = _exec_form(STAGES["gateway"], "CMD")
    assert command == ["gateway", "--keys", f"{desired.KEYS_DIR}/jwks.json"]
    assert not {"--dev", "--demo"} & set(command)
    env = _env("gateway")
    assert env["GAMESYNC_HOST"] == "0.0.0.0"
    dev_like = {"GAMESYNC_DEV", "GAMESYNC_DEMO", "GAMESYNC_AUTHZ", "GAMESYNC_KEYS"}
    assert not dev_like & set(env), "the image must not choose keys, policy or dev mode"
    # The Dockerfile says what to mount, next to the command that needs it.
    text = DOCKERFILE.read_text()
    for needed in (f"{desired.KEYS_DIR}/", "GAMESYNC_BROKER", "GAMESYNC_PUBLISH_TOKEN"):
        assert needed in text


def test_the_operator_runs_gateways_with_the_keys_the_image_expects() -> None:
    """The operator overrides the command with `gateway` and sets GAMESYNC_KEYS to the path
    the image's own default command names, so both ways start a keyed gateway."""
    spec = parse_spec(
        "demo",
        "games",
        {
            "gateway": {"image": "gw:1"},
            "redis": {"urlSecretRef": {"name": "r"}},
            "exposure": {"mode": "None"},
        },
    )
    container = desired.deployment(spec, 1)["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["gateway"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GAMESYNC_KEYS"] == _exec_form(STAGES["gateway"], "CMD")[2]
