#!/usr/bin/env python3
"""pam_fork_app.py SERVICE USER PASSWORD: a PAM application that forks in the middle of
pam_authenticate. Its conversation answers a password prompt with PASSWORD, prints every message,
and on the message "FORK" (pam_echo in the stack) forks: the parent waits and exits with the child's
status; the child goes on with the stack, holding the PAM handle it inherited (the split's data on
it, not the split's connection). Run under pam_wrapper (LD_PRELOAD): pam_start etc. are looked up
in the process's global scope, so the wrapper's come first. Exit 0: PAM_SUCCESS, 1: any other."""
import ctypes
import os
import sys

PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_ERROR_MSG, PAM_TEXT_INFO = 1, 2, 3, 4
PAM_SUCCESS, PAM_CONV_ERR = 0, 19


class Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


CONV_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(Message)),
                           ctypes.POINTER(ctypes.POINTER(Response)), ctypes.c_void_p)


class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV_FN), ("appdata_ptr", ctypes.c_void_p)]


ctypes.CDLL("libpam.so.0", mode=ctypes.RTLD_GLOBAL)
glob = ctypes.CDLL(None)
libc = ctypes.CDLL("libc.so.6")
libc.calloc.restype = ctypes.c_void_p
libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
libc.strdup.restype = ctypes.c_void_p
libc.strdup.argtypes = [ctypes.c_char_p]
glob.pam_strerror.restype = ctypes.c_char_p
glob.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]

service, user, password = sys.argv[1], sys.argv[2], sys.argv[3]


def conv(n, msgs, resp, _appdata):
    out = libc.calloc(n, ctypes.sizeof(Response))
    if not out:
        return PAM_CONV_ERR
    rs = ctypes.cast(out, ctypes.POINTER(Response))
    for i in range(n):
        m = msgs[i].contents
        text = (m.msg or b"").decode(errors="replace")
        if m.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
            print("prompt: %s" % text, flush=True)
            rs[i].resp = libc.strdup(password.encode())
        else:
            print("%s: %s" % ("error" if m.msg_style == PAM_ERROR_MSG else "info", text), flush=True)
            if text == "FORK":
                pid = os.fork()
                if pid != 0:
                    _, status = os.waitpid(pid, 0)
                    os._exit(os.waitstatus_to_exitcode(status))
                print("forked: the stack goes on in the child", flush=True)
    resp[0] = rs
    return PAM_SUCCESS


conv_fn = CONV_FN(conv)
c = Conv(conv_fn, None)
pamh = ctypes.c_void_p()
rc = glob.pam_start(service.encode(), user.encode(), ctypes.byref(c), ctypes.byref(pamh))
if rc != PAM_SUCCESS:
    print("pam_start: %d" % rc, flush=True)
    sys.exit(1)
glob.pam_set_item(pamh, 4, b"192.0.2.7")  # PAM_RHOST
rc = glob.pam_authenticate(pamh, 0)
print("pam_authenticate: %s" % glob.pam_strerror(pamh, rc).decode(), flush=True)
glob.pam_end(pamh, rc)
sys.exit(0 if rc == PAM_SUCCESS else 1)
