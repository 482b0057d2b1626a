"""The agent's own memory: a folder of text files it manages with the `memory` tool, kept on the
host side of the episode (never in the sandbox, so nothing the agent runs can read or change it
behind the tool's back, and a reset of the sandbox does not touch it).

Commands (the shape of Anthropic's memory tool): `view` (the folder's listing, or a file with
line numbers), `create` (a new file, or overwrite), `str_replace` (one exact occurrence),
`insert` (text after a line), `delete` (a file or a folder). Every path is under `/memories`;
one that leaves it, a missing file, an ambiguous replace or a write past a size limit is a
`MemoryOpError` whose message the agent is answered with. Each operation is recorded (command,
path, ok, error, bytes after) for events.jsonl; `snapshot()` is what result.json keeps.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

ROOT = "/memories"
COMMANDS = ("view", "create", "str_replace", "insert", "delete")
MAX_FILE_BYTES = 16 * 1024  # one file
MAX_TOTAL_BYTES = 64 * 1024  # the whole memory
MAX_FILES = 32
MAX_PATH_CHARS = 200


class MemoryOpError(ValueError):
    """A memory operation that cannot be done; the message is the agent's observation."""


@dataclass(frozen=True)
class MemoryLimits:
    max_file_bytes: int = MAX_FILE_BYTES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_files: int = MAX_FILES


@dataclass
class MemoryStore:
    limits: MemoryLimits = field(default_factory=MemoryLimits)
    files: dict[str, str] = field(default_factory=dict)  # normalised path -> text
    operations: list[dict[str, Any]] = field(default_factory=list)

    # -- paths ---------------------------------------------------------------------------
    @staticmethod
    def normalise(path: Any) -> str:
        """`path` as `/memories/...`, or MemoryOpError when it is not a path under /memories."""
        if not isinstance(path, str) or not path.strip():
            raise MemoryOpError("path must be a non-empty string under /memories")
        if len(path) > MAX_PATH_CHARS or "\x00" in path or "\\" in path:
            raise MemoryOpError(f"invalid path {path[:80]!r}")
        joined = path if path.startswith("/") else posixpath.join(ROOT, path)
        normal = posixpath.normpath(joined)
        if normal != ROOT and not normal.startswith(ROOT + "/"):
            raise MemoryOpError(f"{path!r} is outside {ROOT}: the memory tool only reaches files under {ROOT}")
        return normal

    def _file(self, path: str) -> str:
        if path not in self.files:
            raise MemoryOpError(f"{path} does not exist" + ("" if path == ROOT else f" (view {ROOT} to list files)"))
        return path

    # -- commands --------------------------------------------------------------------------
    def apply(self, arguments: dict[str, Any]) -> str:
        """Run one command; its answer, or MemoryOpError. Recorded either way."""
        command = arguments.get("command")
        record: dict[str, Any] = {"command": command, "path": arguments.get("path")}
        try:
            if command not in COMMANDS:
                raise MemoryOpError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
            answer = getattr(self, f"_{command}")(arguments)
        except MemoryOpError as exc:
            self.operations.append({**record, "ok": False, "error": str(exc)})
            raise
        self.operations.append({**record, "ok": True, "bytes": self.total_bytes()})
        return answer

    def _view(self, args: dict[str, Any]) -> str:
        path = self.normalise(args.get("path", ROOT))
        if path == ROOT or any(p.startswith(path + "/") for p in self.files):
            inside = sorted(p for p in self.files if p.startswith(path.rstrip("/") + "/"))
            if not inside:
                return f"{path} is empty"
            return f"{path}:\n" + "\n".join(f"{len(self.files[p].encode())}\t{p}" for p in inside)
        text = self.files[self._file(path)]
        return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), start=1))

    def _write(self, path: str, text: str) -> None:
        if path == ROOT:
            raise MemoryOpError(f"{ROOT} is the memory folder, not a file")
        size = len(text.encode())
        if size > self.limits.max_file_bytes:
            raise MemoryOpError(f"{path} would be {size} bytes; a memory file holds at most {self.limits.max_file_bytes}")
        total = self.total_bytes() - len(self.files.get(path, "").encode()) + size
        if total > self.limits.max_total_bytes:
            raise MemoryOpError(f"the memory would hold {total} bytes; it holds at most {self.limits.max_total_bytes} "
                                "(delete or shorten a file first)")
        if path not in self.files and len(self.files) >= self.limits.max_files:
            raise MemoryOpError(f"the memory holds at most {self.limits.max_files} files")
        if any(p.startswith(path + "/") for p in self.files) or any(path.startswith(p + "/") for p in self.files):
            raise MemoryOpError(f"{path} clashes with a folder or file of the same name")
        self.files[path] = text

    @staticmethod
    def _text(args: dict[str, Any], key: str) -> str:
        value = args.get(key)
        if not isinstance(value, str):
            raise MemoryOpError(f"{key} must be a string")
        return value

    def _create(self, args: dict[str, Any]) -> str:
        path = self.normalise(args.get("path"))
        existed = path in self.files
        self._write(path, self._text(args, "file_text"))
        return f"{'overwrote' if existed else 'created'} {path}"

    def _str_replace(self, args: dict[str, Any]) -> str:
        path = self._file(self.normalise(args.get("path")))
        old, new = self._text(args, "old_str"), self._text(args, "new_str")
        count = self.files[path].count(old) if old else 0
        if count != 1:
            raise MemoryOpError(f"old_str occurs {count} times in {path}; it must occur exactly once")
        self._write(path, self.files[path].replace(old, new, 1))
        return f"edited {path}"

    def _insert(self, args: dict[str, Any]) -> str:
        path = self._file(self.normalise(args.get("path")))
        line, text = args.get("insert_line"), self._text(args, "insert_text")
        lines = self.files[path].split("\n")
        if isinstance(line, bool) or not isinstance(line, int) or not 0 <= line <= len(lines):
            raise MemoryOpError(f"insert_line must be an integer from 0 to {len(lines)} (the lines of {path})")
        self._write(path, "\n".join([*lines[:line], text, *lines[line:]]))
        return f"inserted into {path} after line {line}"

    def _delete(self, args: dict[str, Any]) -> str:
        path = self.normalise(args.get("path"))
        doomed = [p for p in self.files if p == path or p.startswith(path.rstrip("/") + "/")]
        if not doomed:
            raise MemoryOpError(f"{path} is empty" if path == ROOT else f"{path} does not exist")
        for p in doomed:
            del self.files[p]
        return f"deleted {path}" + (f" ({len(doomed)} files)" if len(doomed) > 1 else "")

    # -- views ------------------------------------------------------------------------------
    def total_bytes(self) -> int:
        return sum(len(text.encode()) for text in self.files.values())

    def render(self) -> str:
        """The whole memory as the text pinned in the context (empty memory: says so)."""
        if not self.files:
            return f"(your memory {ROOT} is empty)"
        return "\n\n".join(f"--- {path} ---\n{text}" for path, text in sorted(self.files.items()))

    def snapshot(self) -> dict[str, Any]:
        """What result.json records: the files at the end and the operations' counts."""
        failed = sum(1 for op in self.operations if not op["ok"])
        return {"files": dict(sorted(self.files.items())), "bytes": self.total_bytes(),
                "operations": len(self.operations), "errors": failed}
