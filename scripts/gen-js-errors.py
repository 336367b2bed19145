#!/usr/bin/env python3
"""Regenerates the table at the end of engine/jetstream/src/errors.rs from nats-server's
server/jetstream_errors_generated.go (path given as the only argument).

Names: Go `JSStreamSubjectOverlapErr` becomes `STREAM_SUBJECT_OVERLAP`; the suffixes `ErrF`
and `F` (descriptions with placeholders) are dropped the same way."""
import re
import sys

MARK = "// ---- the table (generated from nats-server's jetstream_errors_generated.go) ----\n"
src = open(sys.argv[1]).read()
rows = re.findall(
    r'^\s*(JS\w+?)(?:ErrF|Err|F)?:\s*\{Code:\s*(\d+),\s*ErrCode:\s*(\d+),\s*Description:\s*("(?:[^"\\]|\\.)*")\}',
    src,
    re.M,
)
if len(rows) < 100:
    sys.exit(f"only {len(rows)} rows found: the Go file's layout changed")


def snake(name):
    name = name[2:]  # JS prefix
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return s.upper()


out = []
for name, code, err_code, desc in rows:
    out.append(
        f"pub const {snake(name)}: ErrDef = ErrDef {{\n"
        f"    code: {code},\n    err_code: {err_code},\n    description: {desc},\n}};\n"
    )
path = "engine/jetstream/src/errors.rs"
text = open(path).read()
head = text.split(MARK)[0]
open(path, "w").write(head + MARK + "\n".join(out))
print(f"{len(rows)} errors")
