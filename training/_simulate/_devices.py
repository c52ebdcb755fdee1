"""Clients (a browser or an app install on one device), their user agents and identifier values.

A phone with the shop's app and a browser is two clients: the app sends a `device` id, the
browser a `cookie`. User agents are fixed per client, as real ones are, except that a Chromium
or Firefox browser updates once in a while (the string changes, its family does not).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from linkage import Identifier


class Form(Enum):
    PHONE = "phone"
    TABLET = "tablet"
    COMPUTER = "computer"
    WORK = "work"  # a work computer: at the office, and at home on home-office days if a laptop


@dataclass(slots=True, eq=False)
class Client:
    """One browser or app install, and its identifier's current value."""

    form: Form
    app: bool
    safari: bool  # the browser caps script-set cookies at safari_cookie_days
    portable: bool  # leaves the house (phones, laptops)
    gps: bool  # an app allowed to read the location
    user_agents: tuple[str, str]  # before and after `updated_at`
    updated_at: float
    users: tuple[int, ...] = ()
    identifier: Identifier | None = None  # current value; None until first used
    expires: float = math.inf
    last_seen: float = -math.inf
    logged_in: set[int] = field(default_factory=set)  # persons an app keeps logged in

    def user_agent(self, t: float) -> str:
        return self.user_agents[1] if t >= self.updated_at else self.user_agents[0]


@dataclass(frozen=True, slots=True)
class Handset:
    """One phone: its operating system and model, which its app and its browser both report."""

    ios: bool
    ios_version: tuple[int, int]  # for an iPhone
    android: int  # for an Android phone
    model: str  # for an Android phone


class Identities:
    """Draws identifier values that look like the real ones and are never issued twice."""

    _FIRST = (
        "anna", "ben", "clara", "david", "elena", "felix", "greta", "hannah", "jonas", "julia", "karl", "lea",
        "lukas", "maria", "max", "mia", "noah", "paul", "sara", "sophie", "tim", "tom", "eva", "emil", "ida",
        "leon", "lina", "marie", "moritz", "nina",
    )  # fmt: skip
    _LAST = (
        "bauer", "becker", "braun", "fischer", "hoffmann", "huber", "koch", "krause", "lang", "meier", "meyer",
        "mueller", "neumann", "richter", "schmid", "schmidt", "schneider", "schulz", "schwarz", "wagner",
        "weber", "wolf", "zimmermann", "keller", "frei", "gruber", "berger", "moser", "brunner", "steiner",
    )  # fmt: skip
    _DOMAINS = ("example-mail.test", "mailbox.example", "post.example.net", "inbox.example.org")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._issued: set[str] = set()

    def cookie(self, t: float) -> Identifier:
        """A first-party analytics cookie: random client number and the time it was set."""
        return Identifier("cookie", self._unique(lambda: f"GA1.1.{self._rng.randrange(10**8, 2**31)}.{int(t)}"))

    def device(self, ios: bool) -> Identifier:
        """An app install id: iOS vendor ids are upper-case UUIDs, Android ones lower-case."""
        value = self._unique(self._uuid)
        return Identifier("device", value.upper() if ios else value)

    def login(self) -> Identifier:
        return Identifier("login", self._unique(lambda: f"cust-{self._rng.randrange(1_000_000, 10_000_000)}"))

    def email(self) -> Identifier:
        rng = self._rng

        def draw() -> str:
            number = rng.randrange(1, 1000) if rng.random() < 0.7 else ""
            return f"{rng.choice(self._FIRST)}.{rng.choice(self._LAST)}{number}@{rng.choice(self._DOMAINS)}"

        return Identifier("email", self._unique(draw))

    def _uuid(self) -> str:
        bits = self._rng.getrandbits(128)
        # Version 4, variant 1: what the platforms generate.
        bits = (bits & ~(0xF << 76)) | (4 << 76)
        bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def _unique(self, draw: Callable[[], str]) -> str:
        while True:
            value = draw()
            if value not in self._issued:
                self._issued.add(value)
                return value


_IOS = ((18, 5), (18, 4), (18, 3), (17, 7), (16, 7))
_IOS_WEIGHTS = (25, 35, 15, 15, 10)
_CFNETWORK = {16: "1410.0.3 Darwin/22.6.0", 17: "1498.700.2 Darwin/23.6.0", 18: "3826.500.131 Darwin/24.5.0"}
_CHROME = (134, 135, 136)
_CHROME_WEIGHTS = (15, 35, 50)
_FIREFOX = (137, 138)
_MAC_SAFARI = ((18, 5), (18, 4), (17, 6))
# Android phones: a few best sellers and a long tail of models, by popularity (Zipf-like), as
# in real traffic, where the model in an app's or Samsung Internet's user agent is often rare.
_ANDROID_BEST_SELLERS = ("SM-A556B", "SM-S921B", "Pixel 8", "SM-A356B", "2312DRA50G", "Pixel 7a", "CPH2581")
_ANDROID_SERIES = ("SM-A", "SM-M", "SM-G", "SM-S", "moto g", "RMX", "CPH", "V2", "M2", "XQ-", "Nokia G", "TECNO ")
_ANDROID_TAIL = 600
_ANDROID_TABLETS = ("SM-X210", "SM-X710", "Lenovo TB-X606F")
_APP_VERSIONS = ("5.12.0", "5.13.1", "5.14.0")
_MAC = "Macintosh; Intel Mac OS X 10_15_7"  # frozen by every macOS browser since 2020
_WINDOWS = "Windows NT 10.0; Win64; x64"  # Windows 11 reports itself as 10 too
_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_BLINK = "AppleWebKit/537.36 (KHTML, like Gecko)"


def _ios_app(version: str, device: str, ios: tuple[int, int]) -> str:
    os_name = "iPadOS" if device == "iPad" else "iOS"
    scale = "2.00" if device == "iPad" else "3.00"
    return (
        f"idstitch-app/{version} ({device}; {os_name} {ios[0]}.{ios[1]}; Scale/{scale}) CFNetwork/{_CFNETWORK[ios[0]]}"
    )


def _android_app(version: str, android: int, model: str, mobile: bool) -> str:
    kind = "; Mobile" if mobile else ""
    return f"idstitch-app/{version} (Linux; Android {android}; {model}{kind}) okhttp/4.12.0"


def _iphone_safari(ios: tuple[int, int]) -> str:
    return f"Mozilla/5.0 ({_iphone(ios)}) {_WEBKIT} Version/{ios[0]}.{ios[1]} Mobile/15E148 Safari/604.1"


def _iphone_chrome(ios: tuple[int, int], major: int) -> str:
    build = f"{major}.0.{7000 + 50 * (major - 134)}.96"
    return f"Mozilla/5.0 ({_iphone(ios)}) {_WEBKIT} CriOS/{build} Mobile/15E148 Safari/604.1"


def _iphone(ios: tuple[int, int]) -> str:
    return f"iPhone; CPU iPhone OS {ios[0]}_{ios[1]} like Mac OS X"


def _mac_safari(version: tuple[int, int]) -> str:
    # iPad Safari sends this too: it has asked for desktop sites since iPadOS 13.
    return f"Mozilla/5.0 ({_MAC}) {_WEBKIT} Version/{version[0]}.{version[1]} Safari/605.1.15"


def _android_chrome(major: int, mobile: bool) -> str:
    # Chrome's reduced user agent: the Android version and model are frozen placeholders.
    kind = "Mobile " if mobile else ""
    return f"Mozilla/5.0 (Linux; Android 10; K) {_BLINK} Chrome/{major}.0.0.0 {kind}Safari/537.36"


def _samsung(model: str, android: int, chromium: int) -> str:
    engine = f"SamsungBrowser/27.0 Chrome/{chromium}.0.0.0"
    return f"Mozilla/5.0 (Linux; Android {android}; {model}) {_BLINK} {engine} Mobile Safari/537.36"


def _android_firefox(android: int, major: int) -> str:
    return f"Mozilla/5.0 (Android {android}; Mobile; rv:{major}.0) Gecko/{major}.0 Firefox/{major}.0"


def _desktop_chrome(platform: str, major: int) -> str:
    return f"Mozilla/5.0 ({platform}) {_BLINK} Chrome/{major}.0.0.0 Safari/537.36"


def _edge(major: int) -> str:
    return f"{_desktop_chrome(_WINDOWS, major)} Edg/{major}.0.{3100 + 60 * (major - 134)}.66"


def _desktop_firefox(platform: str, major: int) -> str:
    return f"Mozilla/5.0 ({platform}; rv:{major}.0) Gecko/20100101 Firefox/{major}.0"


class Clients:
    """Makes clients with consistent, realistic user agents for one simulated window."""

    def __init__(self, rng: random.Random, start: float, span: float, gps_share: float) -> None:
        self._rng = rng
        self._start = start
        self._span = span
        self._gps_share = gps_share
        tail = sorted(
            {
                f"{rng.choice(_ANDROID_SERIES)}{rng.randrange(100, 999)}{rng.choice('ABFGNU')}"
                for _ in range(_ANDROID_TAIL)
            }
        )
        rng.shuffle(tail)
        self._android_models = (*_ANDROID_BEST_SELLERS, *tail)
        popularity = (1.0 / (k + 1) ** 0.9 for k in range(len(self._android_models)))
        self._android_weights = list(itertools.accumulate(popularity))

    def handset(self, ios: bool) -> Handset:
        """A phone: an iPhone on one iOS version, or an Android model on one Android version."""
        rng = self._rng
        model = rng.choices(self._android_models, cum_weights=self._android_weights)[0]
        return Handset(ios, self._ios(), rng.choice((13, 14, 15)), model)

    def same_handset(self, phone: Handset) -> Handset:
        """Another phone of the same model (families often buy the same), on the same OS major."""
        rng = self._rng
        ios_version = phone.ios_version if rng.random() < 0.7 else self._ios()
        return Handset(phone.ios, ios_version, phone.android, phone.model)

    def phone_app(self, phone: Handset) -> Client:
        rng = self._rng
        version = rng.choice(_APP_VERSIONS)
        if phone.ios:
            ua = _ios_app(version, "iPhone", phone.ios_version)
        else:
            ua = _android_app(version, phone.android, phone.model, mobile=True)
        return self._client(Form.PHONE, (ua, ua), app=True, gps=rng.random() < self._gps_share)

    def phone_browser(self, phone: Handset) -> Client:
        """The phone's browser; its user agent shows the phone's OS version where it shows one.

        Safari and Chrome on an iPhone send the iOS version; Samsung Internet (on Samsung
        phones only) sends the Android version and model, Firefox the Android version; Android
        Chrome's reduced user agent hides both.
        """
        rng = self._rng
        if phone.ios:
            ios_version = phone.ios_version
            if rng.random() < 0.85:
                ua = _iphone_safari(ios_version)
                return self._client(Form.PHONE, (ua, ua), safari=True)
            return self._client(Form.PHONE, self._versions(_CHROME, lambda v: _iphone_chrome(ios_version, v)))
        roll = rng.random()
        samsung = phone.model.startswith("SM-")
        if roll < 0.05:
            uas = self._versions(_FIREFOX, lambda v: _android_firefox(phone.android, v))
        elif samsung and roll < 0.05 + 0.45:  # about 15 % of all Android browsing, as before
            model, android = phone.model, phone.android
            uas = self._versions((125,), lambda v: _samsung(model, android, v))
        else:
            uas = self._versions(_CHROME, lambda v: _android_chrome(v, mobile=True))
        return self._client(Form.PHONE, uas)

    def computer(self, work: bool = False) -> Client:
        """A personal computer (a laptop three times in five) or a work computer (a laptop
        seven times in ten: it goes home on home-office days)."""
        rng = self._rng
        form = Form.WORK if work else Form.COMPUTER
        portable = rng.random() < (0.7 if work else 0.6)
        roll = rng.random()
        if work or roll < 0.62:
            browser = rng.random()
            if browser < (0.55 if work else 0.65):
                uas = self._versions(_CHROME, lambda v: _desktop_chrome(_WINDOWS, v))
            elif work or browser < 0.9:
                uas = self._versions(_CHROME, _edge)
            else:
                uas = self._versions(_FIREFOX, lambda v: _desktop_firefox(_WINDOWS, v))
        elif roll < 0.95:
            if rng.random() < 0.55:
                ua = _mac_safari(rng.choice(_MAC_SAFARI))
                return self._client(form, (ua, ua), safari=True, portable=portable)
            uas = self._versions(_CHROME, lambda v: _desktop_chrome(_MAC, v))
        else:
            uas = self._versions(_FIREFOX, lambda v: _desktop_firefox("X11; Linux x86_64", v))
        return self._client(form, uas, portable=portable)

    def tablet(self, app: bool) -> Client:
        """An iPad or an Android tablet, in the shop's app or the browser."""
        rng = self._rng
        gps = rng.random() < self._gps_share
        if rng.random() < 0.55:
            ios_version = self._ios()
            if app:
                ua = _ios_app(rng.choice(_APP_VERSIONS), "iPad", ios_version)
                return self._client(Form.TABLET, (ua, ua), app=True, gps=gps)
            ua = _mac_safari(ios_version)
            return self._client(Form.TABLET, (ua, ua), safari=True)
        if app:
            ua = _android_app(rng.choice(_APP_VERSIONS), 14, rng.choice(_ANDROID_TABLETS), mobile=False)
            return self._client(Form.TABLET, (ua, ua), app=True, gps=gps)
        return self._client(Form.TABLET, self._versions(_CHROME, lambda v: _android_chrome(v, mobile=False)))

    def _ios(self) -> tuple[int, int]:
        return self._rng.choices(_IOS, _IOS_WEIGHTS)[0]

    def _versions(self, majors: tuple[int, ...], render: Callable[[int], str]) -> tuple[str, str]:
        weights = _CHROME_WEIGHTS if majors == _CHROME else None
        major = self._rng.choices(majors, weights)[0]
        return render(major), render(major + 1)

    def _client(
        self,
        form: Form,
        user_agents: tuple[str, str],
        *,
        app: bool = False,
        safari: bool = False,
        portable: bool | None = None,
        gps: bool = False,
    ) -> Client:
        # Browsers update on their own schedule: some within the window, most not.
        updated_at = math.inf
        if user_agents[0] != user_agents[1]:
            updated_at = self._start + self._rng.uniform(0.1, 2.5) * self._span
        return Client(
            form=form,
            app=app,
            safari=safari,
            portable=form is Form.PHONE if portable is None else portable,
            gps=gps,
            user_agents=user_agents,
            updated_at=updated_at,
        )
