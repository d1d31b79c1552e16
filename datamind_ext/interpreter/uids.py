"""uid ranges for session processes, leased host-wide so no two live pools ever share a uid.

Sessions of a pool run as uids of its range, and cleanup kills every process of a uid, so an
overlap would let one pool's sweep kill another pool's sessions (or a session signal and read
another's files). A range is a run of fixed-size blocks; a block is held by an exclusive
``flock`` on its lock file in a directory shared by every process of the host. The zygote holds
the locks for its whole life and the kernel drops them when it exits, however it exits, so a
crashed pool never leaks its range.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

BLOCK_UIDS = 4096
FIRST_UID = 1_000_000  # far above system and login uids (the sweeper refuses uids below 65536)
MAX_BLOCKS = (2**31 - 1 - FIRST_UID) // BLOCK_UIDS


def lock_dir() -> str:
    """``/run`` is per host and root-only; the temp dir is the fallback where /run is not writable."""
    base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
    return os.path.join(base, "datamind-interp-uids")


def lease(n_uids: int) -> tuple[int, list[int]]:
    """Lease ``n_uids`` consecutive uids: (first uid, lock fds to keep open as long as the range is used)."""
    folder = lock_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    need = max(1, -(-n_uids // BLOCK_UIDS))
    k = 0
    while k + need <= MAX_BLOCKS:
        fds: list[int] = []
        for j in range(k, k + need):
            fd = os.open(os.path.join(folder, str(j)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                break
            fds.append(fd)
        else:
            return FIRST_UID + k * BLOCK_UIDS, fds
        for fd in fds:
            os.close(fd)
        k = j + 1
    raise OSError(f"no free range of {n_uids} session uids left on this host")
