"""Robustness check over public BPMN corpora (none of their files are kept in this repository).

    python scripts/corpus_check.py DIR [DIR ...]

Every ``*.bpmn`` file under the directories must either deploy (parse, validate and pass the
runtime's support check) or be refused with a BpmnValidationError naming what is wrong. Any
other exception is a crash and makes the exit code 1. Prints counts and the most common
refusal reasons.
"""

from __future__ import annotations

import collections
import re
import sys
import traceback
from pathlib import Path

from natsflow_engine.runtime.definitions import parse_and_check

from natsflow.errors import BpmnValidationError


def main(dirs: list[str]) -> int:
    files = sorted(p for d in dirs for p in Path(d).rglob("*.bpmn"))
    deployed = refused = crashed = 0
    reasons: collections.Counter[str] = collections.Counter()
    for path in files:
        try:
            parse_and_check(path.read_bytes(), name=path.name)
            deployed += 1
        except BpmnValidationError as exc:
            refused += 1
            for issue in exc.errors:
                if not issue.message.strip():
                    print(f"EMPTY MESSAGE: {path}")
                    crashed += 1
                reasons[re.sub(r"'[^']*'", "'…'", issue.message)[:90]] += 1
        except Exception:
            crashed += 1
            print(f"CRASH: {path}\n{traceback.format_exc()}")
    print(f"{len(files)} files: {deployed} deploy, {refused} refused with a clear message, {crashed} crashed")
    for reason, count in reasons.most_common(15):
        print(f"  {count:5d}  {reason}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
