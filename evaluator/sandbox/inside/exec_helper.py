"""Runs one command for ctxeval over a plain `docker exec` (the fallback when a sandbox's channel
is not usable; stdlib only; `python3 -I -S -c SOURCE COMMAND [ARG...]`, as root). Its source is
exec_core.py's followed by this file's; the command is run by exec_core.run. Then it writes one
last line on stderr:

    \\x1ectxeval-exec NONCE {json: rc, timed_out, capped, counters, bytes}

NONCE comes from the environment, which the agent's uid cannot read (/proc/PID/environ of a root
process), so the command cannot forge that line. Environment in (removed before the command runs):
CTXEVAL_EXEC_NONCE, CTXEVAL_EXEC_TIMEOUT, CTXEVAL_EXEC_OUTPUT_CAP, CTXEVAL_EXEC_UID, CTXEVAL_EXEC_CWD.
"""
MARK = b"\x1ectxeval-exec "


def main():
    env = dict(os.environ)
    nonce = env.pop("CTXEVAL_EXEC_NONCE")
    timeout = float(env.pop("CTXEVAL_EXEC_TIMEOUT"))
    cap = int(env.pop("CTXEVAL_EXEC_OUTPUT_CAP"))
    uid = int(env.pop("CTXEVAL_EXEC_UID"))
    cwd = env.pop("CTXEVAL_EXEC_CWD", "/workspace")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    report = run_counted(sys.argv[1], sys.argv[2:], timeout, cap, uid, cwd, env)
    os.write(2, MARK + nonce.encode() + b" " + json.dumps(report).encode() + b"\n")
    os._exit(min(report["rc"], 255))


main()
