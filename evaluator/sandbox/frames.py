"""The engine's multiplexed stream (an exec's, or the attached PID 1's): frames of
[stream, 0, 0, 0, size (4 bytes, big-endian)] + payload, stream 1 stdout and 2 stderr."""
from __future__ import annotations

FRAME_HEADER = 8


def split_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete frames at the start of `buffer` as (stream, payload), and the rest still to come."""
    frames = []
    while len(buffer) >= FRAME_HEADER:
        size = int.from_bytes(buffer[4:8], "big")
        if len(buffer) < FRAME_HEADER + size:
            break
        frames.append((buffer[0], buffer[FRAME_HEADER:FRAME_HEADER + size]))
        buffer = buffer[FRAME_HEADER + size:]
    return frames, buffer
