"""One module per Lambda function (the template's Handler names it), and what the API functions share.

Cold start: while a function's modules load, Python's cyclic garbage collector runs again and again
over what boto3, Powertools, pydantic and our models create (a few hundred thousand objects) and finds
next to nothing to free, since what a function loads lives as long as the function. Its first full
pass over all of them costs an API function 20-30 ms, at import or, when the import stays just under
the threshold, in the first request. So in Lambda, importing this package pauses the collector, and
each handler module ends with `init_done()`: everything loaded so far leaves the collector's view
(`gc.freeze`), so no later pass walks it again, and the collector runs again for what requests
create. Outside Lambda (tests, the local stack, the OpenAPI build) the collector is left alone.
"""

from __future__ import annotations

import gc
import os

_IN_LAMBDA = "AWS_LAMBDA_FUNCTION_NAME" in os.environ

if _IN_LAMBDA:
    gc.disable()


def init_done() -> None:
    """The end of a handler module's import (see above); a no-op outside Lambda and after the first."""
    if _IN_LAMBDA and not gc.isenabled():
        gc.freeze()
        gc.enable()
