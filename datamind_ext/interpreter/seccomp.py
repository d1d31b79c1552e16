"""A seccomp filter for session processes: no new namespaces, no exotic sockets, no kernel escapes.

Denied (EPERM unless noted): user/mount/pid/net/... namespaces through ``unshare``, ``setns``
or ``clone`` flags (``clone3`` answers ENOSYS so libc falls back to ``clone``, whose flags the
filter can read); sockets other than AF_UNIX / AF_INET / AF_INET6 (netlink, vsock, packet:
EAFNOSUPPORT); mounting, pivot_root, chroot; ptrace and cross-process memory access; bpf,
perf events, userfaultfd, io_uring (which would bypass this filter), keyrings, module and
kexec loading, file handles. Everything the data stack uses (threads, subprocesses, files,
Unix sockets, mmap) is untouched. Built as classic BPF and installed with prctl through ctypes;
x86-64 only (elsewhere :func:`install` says it is not available).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)

_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06

_NR = {
    "socket": 41, "socketpair": 53, "clone": 56, "clone3": 435,
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "keyctl": 250, "add_key": 248, "request_key": 249, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "swapon": 167, "swapoff": 168, "reboot": 169, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "pidfd_getfd": 438,
}
DENIED = sorted(set(_NR) - {"socket", "socketpair", "clone", "clone3"})
_ALLOWED_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6 (the network namespace has no interface)
_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080


def _errno(e: int) -> int:
    return 0x00050000 | e


def _program() -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) instructions; jumps are relative, as classic BPF wants them."""
    prog: list[tuple[int, int, int, int]] = []
    kill = object()
    fixups: list[tuple[int, object]] = []

    def emit(code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        for slot, target in (("jt", jt), ("jf", jf)):
            if target is kill:
                fixups.append((len(prog), slot))  # type: ignore[arg-type]
        prog.append((code, 0 if jt is kill else int(jt), 0 if jf is kill else int(jf), k))

    emit(_LD_ABS, 4)  # arch
    emit(_JEQ, _AUDIT_ARCH_X86_64, 0, kill)
    emit(_LD_ABS, 0)  # syscall number
    emit(_JGE, 0x40000000, kill, 0)  # the x32 ABI
    for name in DENIED:
        emit(_JEQ, _NR[name], 0, 1)
        emit(_RET, _errno(errno.EPERM))
    emit(_JEQ, _NR["clone3"], 0, 1)
    emit(_RET, _errno(errno.ENOSYS))
    emit(_JEQ, _NR["clone"], 0, 3)
    emit(_LD_ABS, 16)  # args[0], low 32 bits: the clone flags
    emit(_JSET, _NS_FLAGS, 0, len(_ALLOWED_FAMILIES) + 5)  # -> allow
    emit(_RET, _errno(errno.EPERM))
    emit(_JEQ, _NR["socket"], 1, 0)
    emit(_JEQ, _NR["socketpair"], 0, len(_ALLOWED_FAMILIES) + 2)  # -> allow
    emit(_LD_ABS, 16)  # args[0]: the address family
    for i, fam in enumerate(_ALLOWED_FAMILIES):
        emit(_JEQ, fam, len(_ALLOWED_FAMILIES) - i, 0)  # -> allow
    emit(_RET, _errno(errno.EAFNOSUPPORT))
    emit(_RET, _RET_ALLOW)
    kill_at = len(prog)
    emit(_RET, _RET_KILL_PROCESS)
    for at, slot in fixups:
        code, jt, jf, k = prog[at]
        off = kill_at - at - 1
        prog[at] = (code, off, jf, k) if slot == "jt" else (code, jt, off, k)
    return prog


_MACHINE = os.uname().machine
# Built once, when the zygote imports this module: a session only makes the two prctl calls.
_PROGRAM = _program()
_FILTER = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *ins) for ins in _PROGRAM))
_FPROG = ctypes.create_string_buffer(struct.pack("@HP", len(_PROGRAM), ctypes.addressof(_FILTER)))


def install() -> str:
    """Install the filter on this thread (inherited by every thread and process it starts).

    Needs no_new_privs or CAP_SYS_ADMIN. Returns what is in force; raises OSError if not.
    """
    if _MACHINE != "x86_64":
        raise OSError(f"the seccomp filter is written for x86-64, not {_MACHINE}")
    if _libc.prctl(38, ctypes.c_ulong(1), 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if _libc.prctl(22, ctypes.c_ulong(2), _FPROG, 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter refused: {errno.errorcode.get(err, err)}")
    return f"seccomp: no new namespaces, only AF_UNIX/INET/INET6 sockets (netlink, vsock denied), {len(DENIED)} syscalls denied"
