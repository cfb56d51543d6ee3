"""What schemathesis needs to know about this API that its OpenAPI document cannot tell it.

Loaded by `schemathesis.toml`. Two things, both listed there with their reasons:

* `conduit-positions`, the format of the `conduit-min-position` header: positions such as
  `Article#9b2f6c1e-54a8-4c0e-8d47-2f1f6b1f0a11@3`, as the `pattern` in the document says.
  Schemathesis 4.32's coverage phase gives up on a header pattern that needs a character other
  than a letter or a digit (`#`, `@`) and then sends `0` as if it were valid; a format's strategy
  is drawn from instead. It is built from the document's own pattern, so it cannot drift.
* The RealWorld contract's 422 schema (`GenericErrorModel`, which requires `errors.body`) is
  checked as the field-by-field shape the contract's README prescribes, and this API answers.
"""

import json
import pathlib
import re

import schemathesis
from hypothesis import strategies as st

DOCUMENT = json.loads(
    (pathlib.Path(__file__).parent / "common" / "openapi.json").read_text(encoding="utf-8")
)
POSITIONS = DOCUMENT["components"]["parameters"]["MinPosition"]["schema"]["pattern"]

schemathesis.openapi.format(
    "conduit-positions", st.from_regex(re.compile(POSITIONS, re.ASCII), fullmatch=True)
)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    content = raw_schema["components"]["responses"]["GenericError"]["content"]
    content["application/json"]["schema"] = {"$ref": "#/components/schemas/ErrorModel"}
