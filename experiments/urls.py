"""URL text helpers shared by the sweep, tracking, the CLI and analysis: no I/O, no third-party import.

``mask_password`` hides a URL's password wherever a URL is shown or recorded; ``absolute_uri``
and ``sqlite_file`` pin a ``sqlite:///`` URL to the launch dir.
"""

import os
import re


def mask_password(url: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host`` (any such URL inside ``url`` too)."""
    return re.sub(r"(://[^:/@\s]+):[^@/\s]*@", r"\1:***@", str(url))


def absolute_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` → ``sqlite:////launch/dir/mlflow.db``; other URIs unchanged."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
    return uri


def sqlite_file(url: str) -> str | None:
    """The absolute path of the file a ``sqlite:///`` URL names (relative to the launch dir unless it is
    ``sqlite:////abs``); None for any other URL."""
    if not url.startswith("sqlite:///"):
        return None
    return os.path.abspath(url[len("sqlite:///"):].split("?", 1)[0])
