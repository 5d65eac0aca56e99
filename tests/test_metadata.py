"""The package metadata promises only what exists (issue: smaller ones, 15)."""

from __future__ import annotations

import configparser
from pathlib import Path

import cacheplug

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def test_every_extra_installs_something_the_package_uses() -> None:
    extras = _setup_cfg()["options.extras_require"]
    for name, requirements in extras.items():
        assert requirements.strip(), f"the extra {name!r} installs nothing"
    # Besides the dev extra, otel (the SDK and the OTLP exporter, for cacheplug.otel) and cli
    # (click and rich, for cacheplug.cli), every extra is an integration's, named after it.
    assert {"dev", "otel", "cli"} <= set(extras)
    assert _names(extras["cli"]) == {"click", "rich"}
    for name in set(extras) - {"dev", "otel", "cli"}:
        module = ROOT / "cacheplug" / "integrations" / name
        assert module.with_suffix(".py").exists() or module.is_dir(), (
            f"the extra {name!r} is for no integration"
        )
    assert _names(extras["flask"]) == {"flask", "click", "rich"}  # the views and `flask cacheplug`
    assert _names(extras["fastapi"]) == {"fastapi"}
    assert _names(extras["django"]) == {"django"}


def _names(requirements: str) -> set[str]:
    return {line.split(">=")[0].strip() for line in requirements.split() if line}


def test_the_description_names_only_tiers_that_exist() -> None:
    description = _setup_cfg()["metadata"]["description"].lower()
    tiers = {name.removesuffix("Tier").lower() for name in cacheplug.__all__ if name.endswith("Tier")}
    tiers.discard("")
    for word in ("redis", "memcached", "valkey"):
        assert word not in description or word in tiers, f"setup.cfg describes a {word} tier"
