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
    # Besides dev, each extra is for a module that exists: otel (the SDK and the OTLP
    # exporter, for cacheplug.otel), cli (click and rich, for cacheplug.cli), and one per
    # framework integration (cacheplug.integrations.<extra>).
    package = ROOT / "cacheplug"
    for name in set(extras) - {"dev"}:
        places = [package / f"{name}.py", package / name, package / "integrations" / f"{name}.py"]
        places.append(package / "integrations" / name)
        assert any(place.exists() for place in places), f"the extra {name!r} is for no module"
    assert {"dev", "otel", "cli", "streamlit", "django", "flask", "fastapi"} <= set(extras)
    assert _names(extras["flask"]) == {"flask", "click", "rich"}  # the views and `flask cacheplug`
    assert _names(extras["fastapi"]) == {"fastapi"}
    assert _names(extras["django"]) == {"django"}
    assert {line.split(">=")[0].strip() for line in extras["cli"].split() if line} == {"click", "rich"}
    assert {line.split(">=")[0].strip() for line in extras["streamlit"].split() if line} == {"streamlit"}


def _names(requirements: str) -> set[str]:
    return {line.split(">=")[0].strip() for line in requirements.split() if line}


def test_the_description_names_only_tiers_that_exist() -> None:
    description = _setup_cfg()["metadata"]["description"].lower()
    tiers = {name.removesuffix("Tier").lower() for name in cacheplug.__all__ if name.endswith("Tier")}
    tiers.discard("")
    for word in ("redis", "memcached", "valkey"):
        assert word not in description or word in tiers, f"setup.cfg describes a {word} tier"
