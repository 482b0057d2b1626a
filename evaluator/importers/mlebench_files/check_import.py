#!/usr/bin/env python3
"""Run by `ctxeval import mlebench` in a child process (never copied into a bundle): can the
competition's functions be imported from a source folder, the way the bundle will import them?

Usage: python check_import.py JSON, JSON = {"stubs": [names], "functions": [{"root": folder,
"spec": "module:function", "params": [names] or null}, ...]}. Prints one JSON line: for each
function, {"spec", "ok", "error"}; `params` (when given) must be the function's parameter names in
order (MLE-bench's is_valid_prepare_fn). Each function is imported afresh from its own root.
"""
from __future__ import annotations

import inspect
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ctxeval_mlebench as mle  # noqa: E402


def check(root: str, stubs: list[str], spec: str, params: list[str] | None) -> dict:
    try:
        function = mle.load_function(root, spec, stubs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit of a module counts as a failure too
        where = traceback.extract_tb(exc.__traceback__)
        frame = next((f for f in reversed(where) if f.filename.startswith(root)), None)
        at = f" (at {frame.filename}:{frame.lineno})" if frame else ""
        return {"spec": spec, "ok": False, "error": f"{type(exc).__name__}: {exc}{at}"}
    if params is not None:
        try:
            actual = list(inspect.signature(function).parameters)
        except (TypeError, ValueError) as exc:
            return {"spec": spec, "ok": False, "error": f"no signature: {exc}"}
        if actual != params:
            return {"spec": spec, "ok": False,
                    "error": f"takes ({', '.join(actual)}); MLE-bench calls it with ({', '.join(params)})"}
    return {"spec": spec, "ok": True, "error": None}


def main() -> None:
    request = json.loads(sys.argv[1])
    results = [check(item["root"], request["stubs"], item["spec"], item.get("params"))
               for item in request["functions"]]
    print("\n" + json.dumps(results))  # on a line of its own, whatever the imported code printed


if __name__ == "__main__":
    main()
