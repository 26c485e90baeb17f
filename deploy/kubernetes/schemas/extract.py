"""Vendor the ``openAPIV3Schema`` of released CRD files as JSON Schema files (run by hand).

Usage: ``python deploy/kubernetes/schemas/extract.py CRD.yaml... > /dev/null``; writes
``<group>/<kind>_<version>.json`` next to this script, one per served version, and prints what it
wrote. The tests (tests/unit/test_kubernetes_manifests.py) validate rendered custom resources
against these files offline; SOURCES.md records which release each file came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def extract(crd_file: Path) -> list[Path]:
    """Write the schema of every served version of the CRD(s) in ``crd_file``."""
    written = []
    for doc in yaml.safe_load_all(crd_file.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec["versions"]:
            if not version.get("served", False):
                continue
            schema = version["schema"]["openAPIV3Schema"]
            out = HERE / group / f"{kind}_{version['name']}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            written.append(out)
    return written


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        for path in extract(Path(arg)):
            print(path.relative_to(HERE))
