#!/usr/bin/env python3
"""Embeds the web interface (web/*) into a C table for `coffre serve`.

Each file becomes a byte array with its Content-Type and an ETag (the first 16 bytes of its
SHA-256, hex). In the HTML pages, `{{sri:NAME}}` becomes the Subresource Integrity value
(sha384, base64) of web/NAME, so every script and style tag carries integrity= computed here,
at build time. Usage: embed-web.py OUT.c WEB_DIR FILE...
"""
import base64
import hashlib
import os
import re
import sys

TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.ico': 'image/x-icon',
    '.txt': 'text/plain; charset=utf-8',
}

out, web_dir, names = sys.argv[1], sys.argv[2], sorted(os.path.basename(n) for n in sys.argv[3:])
raw = {n: open(os.path.join(web_dir, n), 'rb').read() for n in names}


def sri(m):
    name = m.group(1).decode()
    if name not in raw:
        sys.exit('embed-web.py: {{sri:%s}}: no such file in web/' % name)
    return b'sha384-' + base64.b64encode(hashlib.sha384(raw[name]).digest())


files = []
for n in names:
    data = raw[n]
    if n.endswith('.html'):
        data = re.sub(rb'\{\{sri:([A-Za-z0-9._-]+)\}\}', sri, data)
    if b'{{' in data and n.endswith('.html'):
        sys.exit('embed-web.py: %s: a {{...}} placeholder is left' % n)
    ext = os.path.splitext(n)[1]
    if ext not in TYPES:
        sys.exit('embed-web.py: %s: unknown file type' % n)
    files.append((n, TYPES[ext], data, hashlib.sha256(data).hexdigest()[:32]))

with open(out, 'w') as f:
    f.write('/* generated from web/ by scripts/embed-web.py: do not edit */\n')
    f.write('#include <stddef.h>\n#include "api/web.h"\n')
    for i, (n, ctype, data, etag) in enumerate(files):
        f.write('static const unsigned char file_%d[] = {\n' % i)
        for j in range(0, len(data), 16):
            f.write('  ' + ', '.join('0x%02x' % b for b in data[j:j + 16]) + ',\n')
        f.write('  0x00\n};\n')
    f.write('const struct web_file web_files[] = {\n')
    for i, (n, ctype, data, etag) in enumerate(files):
        f.write('  { "%s", "%s", "\\"%s\\"", file_%d, %d },\n' % (n, ctype, etag, i, len(data)))
    f.write('};\nconst size_t web_files_count = %d;\n' % len(files))
