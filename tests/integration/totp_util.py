"""totp_util.py: a TOTP authenticator for the tests, written from RFC 4226 and RFC 6238 in plain
Python (hmac, hashlib, base64), sharing nothing with coffre's C code, plus readers for what
enrolment returns (the otpauth:// URI, recovery codes).

coffre accepts a code for the steps now-1, now and now+1 and refuses any step not after the last
one it accepted for that user. So a test that logs in several times within 30 s must not reuse a
code: next_code() gives the code of the lowest step still free, which allows three logins per step
of wall time without waiting. Nothing here sleeps.

    from totp_util import totp, next_code, parse_otpauth
    code = totp(secret_b32)                       # the code an authenticator shows now
    code, step = next_code(secret_b32, last_step)  # a code coffre has not seen yet
"""

import base64
import hashlib
import hmac
import re
import struct
import time
import urllib.parse

STEP = 30
DIGITS = 6
WINDOW = 1  # steps either side of now that coffre accepts

# xxxx-xxxx-xxxx-xxxx, lower-case RFC 4648 base32 letters (80 bits)
RECOVERY_CODE_RE = re.compile(r"^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$")


def b32_secret(secret):
    """The key bytes of a secret given as bytes or as base32 text (any case, spaces, no padding)."""
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret)
    s = secret.replace(" ", "").upper().rstrip("=")
    return base64.b32decode(s + "=" * (-len(s) % 8), casefold=False)


def hotp(key, counter, digits=DIGITS):
    """RFC 4226 section 5.3, HMAC-SHA-1, as a zero-padded string."""
    mac = hmac.new(b32_secret(key), struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%0*d" % (digits, value % 10 ** digits)


def step_of(t=None):
    """The TOTP step (RFC 6238 T) of Unix time t (now when None)."""
    return int(time.time() if t is None else t) // STEP


def totp(secret, t=None, digits=DIGITS):
    """The code of Unix time t (now when None)."""
    return hotp(secret, step_of(t), digits)


def next_code(secret, last_step=0, t=None):
    """(code, step) of the lowest step in now-1..now+1 that is after last_step: the code coffre
    will accept next for a user whose last accepted step is last_step. Raises LookupError when
    all three are used (the caller has logged in three times within one step)."""
    now = step_of(t)
    for s in range(now - WINDOW, now + WINDOW + 1):
        if s > last_step:
            return hotp(secret, s), s
    raise LookupError("steps up to %d already used; the next code is valid from %d" % (last_step, last_step * STEP))


def parse_otpauth(uri):
    """The parts of an otpauth://totp/ISSUER:ACCOUNT?... URI: dict with issuer (from the label),
    account, and the query parameters (secret, issuer, algorithm, digits, period) decoded.
    Raises ValueError when it is not a TOTP URI of that shape."""
    u = urllib.parse.urlsplit(uri)
    if u.scheme != "otpauth" or u.netloc != "totp":
        raise ValueError("not an otpauth://totp/ URI: %r" % uri)
    label = urllib.parse.unquote(u.path.lstrip("/"))
    if label.count(":") != 1:
        raise ValueError("label is not ISSUER:ACCOUNT: %r" % label)
    issuer, account = label.split(":")
    query = urllib.parse.parse_qs(u.query, keep_blank_values=True, strict_parsing=True)
    params = {}
    for k, v in query.items():
        if len(v) != 1:
            raise ValueError("parameter %s given %d times" % (k, len(v)))
        params[k] = v[0]
    return dict(params, label_issuer=issuer, account=account)


def normalise_recovery_code(code):
    """The form whose SHA-256 coffre stores: dashes and spaces dropped, upper case."""
    return code.replace("-", "").replace(" ", "").upper()


def recovery_code_hash(code):
    return hashlib.sha256(normalise_recovery_code(code).encode()).digest()
