"""Workspace operations PID 1 runs in a forked helper (stdlib only; not run on its own: its text
is placed between exec_core.py's and supervisor.py's). A reset empties the agent's folders as the
agent's uid and unpacks the starter PID 1 keeps; a wipe also empties root's read-only folders (a
grader's workspace) for the next grade. Each runs only after every agent process was killed, so
nothing changes the trees while they are walked.
"""
import base64
import hashlib
import io
import tarfile


def become(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def wipe(top):
    """Remove everything below `top`, making each folder writable first (what the uid may remove)."""
    for entry in list(os.scandir(top)):
        if entry.is_dir(follow_symlinks=False):
            try:
                os.chmod(entry.path, 0o700)
            except OSError:
                pass
            wipe(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def remove_ipc():
    """Remove the System V shared memory, queues and semaphores this uid may remove."""
    libc, removed = ctypes.CDLL(None, use_errno=True), 0
    for kind, call in (("shm", lambda i: libc.shmctl(i, 0, None)), ("msg", lambda i: libc.msgctl(i, 0, None)),
                       ("sem", lambda i: libc.semctl(i, 0, 0))):
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                ids = [int(line.split()[1]) for line in handle.readlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        removed += sum(1 for i in ids if call(i) == 0)
    return removed


def unpack(data, workspace):
    """The starter's regular files and folders (nothing else: no link, no absolute or .. name)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"refused starter entry {member.name!r}")
            target = os.path.join(workspace, *parts)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, member.mode & 0o755 | 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(tar.extractfile(member).read())


def digest(workspace):
    """sha256 over "<sha256>  ./<path>" lines of every regular file, sorted by path (DIGEST_COMMAND's)."""
    lines = []
    for folder, dirs, files in os.walk(workspace):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    lines.append((b"./" + os.fsencode(os.path.relpath(path, workspace)),
                                  hashlib.sha256(handle.read()).hexdigest().encode()))
    return hashlib.sha256(b"".join(h + b"  " + p + b"\n" for p, h in sorted(lines))).hexdigest()


def wipe_child(request):
    """Empty `root_dirs` as root (read-only folders of root's: a grader's workspace) and unpack
    `fill` (a tar, BASE64) into `fill_dir` as root's, then, as `uid`, empty `dirs` and remove the
    uid's System V IPC objects."""
    for top in request.get("root_dirs", []):
        if os.path.isdir(top):
            wipe(top)
    if request.get("fill") is not None:
        unpack(base64.b64decode(request["fill"]), str(request["fill_dir"]))
    become(int(request["uid"]))
    for top in request.get("dirs", []):
        if os.path.isdir(top):
            wipe(top)
    return {"ok": True, "ipc_removed": remove_ipc()}


def reset_child(request, starter):
    become(int(request["uid"]))
    workspace = str(request["workspace"])
    try:
        os.chmod(workspace, 0o755)
    except OSError:
        pass
    for top in [*request.get("dirs", []), workspace]:
        if os.path.isdir(top):
            wipe(top)
    ipc = remove_ipc()
    unpack(starter, workspace)
    return {"ok": True, "digest": digest(workspace), "ipc_removed": ipc}
