"""deploy/env.example lists every setting portal/config.py reads, so an operator sees each one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_variable_config_reads():
    source = (ROOT / "portal" / "config.py").read_text()
    read = set(re.findall(r'(?:_env|_int_env|environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    read |= {f"{prefix}<JOB>" for prefix in re.findall(r'_PREFIX = "([A-Z_]+_)"', source)}
    assert {"DATABASE_URL", "SECRET_KEY", "EMBEDDED_WORKER"} <= read  # the pattern still finds them
    listed = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", (ROOT / "deploy" / "env.example").read_text(), re.M))
    missing = {name for name in read if not name.endswith("<JOB>") and name not in listed}
    missing |= {name for name in read if name.endswith("<JOB>") and not any(l.startswith(name[:-5]) for l in listed)}
    assert not missing, f"add to deploy/env.example: {sorted(missing)}"
