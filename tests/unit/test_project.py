"""Project-level rules: models/ stays pure, the Makefile and docker files agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"faust", "aiokafka", "kafka", "msgpack", "mode"}


def test_models_never_import_kafka_faust_or_msgpack():
    offenders = []
    for path in (REPO / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_every_make_target_has_a_description_and_help_is_default():
    text = (REPO / "Makefile").read_text()
    assert ".DEFAULT_GOAL := help" in text
    phony = set(re.search(r"\.PHONY:(.*?)\n\n", text, re.S).group(1).replace("\\", " ").split())
    described = set(re.findall(r"^([a-zA-Z_-]+):.*## ", text, re.M))
    assert phony <= described, f"targets without ## description: {phony - described}"


def test_compose_file_parses_and_runs_the_worker_image():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    worker = compose["services"]["worker"]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert worker["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_dockerfile_runs_the_same_commands_as_the_makefile():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert 'CMD ["interest-tracker", "worker"]' in dockerfile
    assert "interest-tracker worker" in makefile
    assert "pip install ." in dockerfile and "pip install -q -e '.[dev,content]'" in makefile
