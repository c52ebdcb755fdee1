"""A small user-agent classifier: operating system, browser and device kind, nothing finer.

The model compares device families, so a coarse, stable reading beats a precise, brittle one.
"""

from __future__ import annotations

import re
from functools import lru_cache

_OS = (
    ("ios", re.compile(r"iPhone|iPad|iPod|CPU (?:iPhone )?OS \d")),
    ("android", re.compile(r"Android")),
    ("windows", re.compile(r"Windows NT|Windows Phone")),
    ("macos", re.compile(r"Macintosh|Mac OS X")),
    ("chromeos", re.compile(r"CrOS")),
    ("linux", re.compile(r"Linux|X11")),
)
_BROWSER = (
    ("app", re.compile(r"\bidstitch-app\b|; wv\)|\bokhttp\b|CFNetwork", re.I)),
    ("edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("samsung", re.compile(r"SamsungBrowser/")),
    ("opera", re.compile(r"OPR/|Opera")),
    ("firefox", re.compile(r"Firefox/|FxiOS/")),
    ("chrome", re.compile(r"Chrome/|CriOS/")),
    ("safari", re.compile(r"Safari/")),
)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)")
_PHONE = re.compile(r"Mobile|iPhone|iPod|Windows Phone")


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str) -> tuple[str, str]:
    """(family, kind): family is `os/browser/kind` such as `ios/safari/phone`; kind is
    `phone`, `tablet` or `desktop`. Unknown parts read `other`."""
    os_name = next((name for name, pattern in _OS if pattern.search(user_agent)), "other")
    browser = next((name for name, pattern in _BROWSER if pattern.search(user_agent)), "other")
    if _TABLET.search(user_agent) and os_name in ("ios", "android"):
        kind = "tablet"
    elif _PHONE.search(user_agent) or os_name in ("ios", "android"):
        kind = "phone"
    else:
        kind = "desktop"
    return f"{os_name}/{browser}/{kind}", kind
